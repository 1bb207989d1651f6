//! Long explanations of diagnostic codes, for `lpnc explain CODE`.
//!
//! Each lives in `docs/codes/CODE.md`, so the same text is readable on its own.

/// The long explanation of a code (`E0010`), if it exists.
pub fn explanation(code: &str) -> Option<&'static str> {
    Some(match code.to_ascii_uppercase().as_str() {
        "E0001" => include_str!("../../docs/codes/E0001.md"),
        "E0002" => include_str!("../../docs/codes/E0002.md"),
        "E0003" => include_str!("../../docs/codes/E0003.md"),
        "E0004" => include_str!("../../docs/codes/E0004.md"),
        "E0005" => include_str!("../../docs/codes/E0005.md"),
        "E0006" => include_str!("../../docs/codes/E0006.md"),
        "E0007" => include_str!("../../docs/codes/E0007.md"),
        "E0008" => include_str!("../../docs/codes/E0008.md"),
        "E0010" => include_str!("../../docs/codes/E0010.md"),
        "E0011" => include_str!("../../docs/codes/E0011.md"),
        "E0012" => include_str!("../../docs/codes/E0012.md"),
        "E0013" => include_str!("../../docs/codes/E0013.md"),
        "E0014" => include_str!("../../docs/codes/E0014.md"),
        "E0015" => include_str!("../../docs/codes/E0015.md"),
        "E0016" => include_str!("../../docs/codes/E0016.md"),
        "E0017" => include_str!("../../docs/codes/E0017.md"),
        "E0018" => include_str!("../../docs/codes/E0018.md"),
        "E0019" => include_str!("../../docs/codes/E0019.md"),
        "E0020" => include_str!("../../docs/codes/E0020.md"),
        "E0021" => include_str!("../../docs/codes/E0021.md"),
        "W0022" => include_str!("../../docs/codes/W0022.md"),
        "E0023" => include_str!("../../docs/codes/E0023.md"),
        "E0024" => include_str!("../../docs/codes/E0024.md"),
        "E0025" => include_str!("../../docs/codes/E0025.md"),
        "E0026" => include_str!("../../docs/codes/E0026.md"),
        "E0027" => include_str!("../../docs/codes/E0027.md"),
        "E0028" => include_str!("../../docs/codes/E0028.md"),
        "E0029" => include_str!("../../docs/codes/E0029.md"),
        "E0030" => include_str!("../../docs/codes/E0030.md"),
        "W0031" => include_str!("../../docs/codes/W0031.md"),
        "W0032" => include_str!("../../docs/codes/W0032.md"),
        "W0033" => include_str!("../../docs/codes/W0033.md"),
        "W0034" => include_str!("../../docs/codes/W0034.md"),
        "E0040" => include_str!("../../docs/codes/E0040.md"),
        "E0041" => include_str!("../../docs/codes/E0041.md"),
        "E0042" => include_str!("../../docs/codes/E0042.md"),
        "E0043" => include_str!("../../docs/codes/E0043.md"),
        "E0044" => include_str!("../../docs/codes/E0044.md"),
        "E0045" => include_str!("../../docs/codes/E0045.md"),
        "E0046" => include_str!("../../docs/codes/E0046.md"),
        "E0050" => include_str!("../../docs/codes/E0050.md"),
        "E0051" => include_str!("../../docs/codes/E0051.md"),
        "E0052" => include_str!("../../docs/codes/E0052.md"),
        "E0053" => include_str!("../../docs/codes/E0053.md"),
        "E0054" => include_str!("../../docs/codes/E0054.md"),
        "E0080" => include_str!("../../docs/codes/E0080.md"),
        "E0081" => include_str!("../../docs/codes/E0081.md"),
        "E0060" => include_str!("../../docs/codes/E0060.md"),
        "W0061" => include_str!("../../docs/codes/W0061.md"),
        "W0062" => include_str!("../../docs/codes/W0062.md"),
        "E0130" => include_str!("../../docs/codes/E0130.md"),
        "W0130" => include_str!("../../docs/codes/W0130.md"),
        "E0131" => include_str!("../../docs/codes/E0131.md"),
        "E0140" => include_str!("../../docs/codes/E0140.md"),
        "E0145" => include_str!("../../docs/codes/E0145.md"),
        "E0146" => include_str!("../../docs/codes/E0146.md"),
        "E0150" => include_str!("../../docs/codes/E0150.md"),
        "E0151" => include_str!("../../docs/codes/E0151.md"),
        "E0152" => include_str!("../../docs/codes/E0152.md"),
        "W0063" => include_str!("../../docs/codes/W0063.md"),
        "E0064" => include_str!("../../docs/codes/E0064.md"),
        "E0070" => include_str!("../../docs/codes/E0070.md"),
        "E0071" => include_str!("../../docs/codes/E0071.md"),
        "E0072" => include_str!("../../docs/codes/E0072.md"),
        "E0073" => include_str!("../../docs/codes/E0073.md"),
        "E0074" => include_str!("../../docs/codes/E0074.md"),
        "E0075" => include_str!("../../docs/codes/E0075.md"),
        "E0120" => include_str!("../../docs/codes/E0120.md"),
        "W0120" => include_str!("../../docs/codes/W0120.md"),
        "E0121" => include_str!("../../docs/codes/E0121.md"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_code_is_explained() {
        for (code, title) in crate::language::diagnostic::CODES {
            let text = super::explanation(code).unwrap_or_else(|| panic!("{code} has no explanation"));
            assert!(text.starts_with(&format!("# {code}: {title}")), "{code}: heading must be `# {code}: {title}`");
        }
    }
}
