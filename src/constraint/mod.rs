//! The constraint families' maths in plain `f64` (no tensors): used by the
//! checker (feasibility, band edges) and by the model (operators, projectors,
//! reparametrization bases, designed filters).

pub mod bands;
