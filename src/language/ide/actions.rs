//! Quick fixes: each "did you mean" of a diagnostic as an edit that
//! replaces the misspelt name (`@lowpas` → `@lowpass`).

use crate::language::ast::Span;
use crate::language::diagnostic::Problem;

#[derive(Clone, Debug, PartialEq)]
pub struct Fix {
    pub title: String,
    /// The problem this fixes (the editor links the two).
    pub problem: Problem,
    pub span: Span,
    pub replacement: String,
}

/// The fixes for the problems whose primary span meets `range`.
pub fn quick_fixes(problems: &[Problem], range: Span) -> Vec<Fix> {
    problems
        .iter()
        .filter(|p| meets(p.span(), range))
        .filter_map(|problem| {
            let (span, replacement) = problem.suggestion()?;
            let title =
                if replacement.is_empty() { "Remove the invisible character".into() } else { format!("Replace with `{replacement}`") };
            Some(Fix { title, problem: problem.clone(), span, replacement })
        })
        .collect()
}

/// Whether two spans overlap or touch (a cursor is an empty range).
fn meets(a: Span, b: Span) -> bool {
    a.start <= b.end && b.start <= a.end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixes(source: &str, needle: &str) -> Vec<(String, String)> {
        let (_, checked) = crate::check_source(source, std::path::Path::new("."));
        let at = source.find(needle).expect("needle");
        quick_fixes(&checked.problems, Span::new(at, at))
            .into_iter()
            .map(|f| (source[f.span.start..f.span.end].to_string(), f.replacement))
            .collect()
    }

    #[test]
    fn misspelt_names_get_their_replacement() {
        let source = "model m {\n  input [1, 64]\n  conv(out=4, kk=9) @lowpas(cutoff=0.2, mode=projekt)\n  rleu\n}\ndata sines()\ntrain {\n  optimiser = adam()\n}\n";
        assert_eq!(fixes(source, "lowpas"), [("lowpas".to_string(), "lowpass".to_string())]);
        assert_eq!(fixes(source, "rleu"), [("rleu".to_string(), "relu".to_string())]);
        assert_eq!(fixes(source, "kk="), [("kk".to_string(), "k".to_string())]);
        assert_eq!(fixes(source, "optimiser"), [("optimiser".to_string(), "optimizer".to_string())]);
        // A problem elsewhere brings no fix here.
        assert!(fixes(source, "input").is_empty());
    }

    #[test]
    fn a_look_alike_letter_is_fixed_to_the_ascii_name() {
        // `mode=projеct` with a Cyrillic е (U+0435): the letter becomes `e`.
        let source = "model m {\n  input [1, 64]\n  conv(out=4, k=9) @lowpass(cutoff=0.2, mode=proj\u{435}ct)\n}\ndata sines()\n";
        assert_eq!(fixes(source, "\u{435}"), [("\u{435}".to_string(), "e".to_string())]);
        // A zero-width space is removed.
        let source = "model m {\n  input [1, 64]\n  conv(out=4,\u{200b} k=9)\n}\ndata sines()\n";
        assert_eq!(fixes(source, "\u{200b}"), [("\u{200b}".to_string(), String::new())]);
    }
}
