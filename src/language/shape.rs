//! Tensor shapes as the checker infers them (without the batch axis).

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Saturating: a shape too large to count is refused as too large.
    pub fn numel(&self) -> usize {
        self.0.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }
    pub fn channels(&self) -> usize {
        self.0[0]
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}
