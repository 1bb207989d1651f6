//! The element types the kernels run on: f32 and f64, and nothing else (the
//! trait is sealed).

use std::cell::RefCell;
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, Sub};
use std::thread::LocalKey;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// f32 or f64: the arithmetic the portable kernels need, and the views that
/// let an f32 call reach the vector kernels (written for f32 only).
pub trait Num:
    sealed::Sealed
    + Copy
    + Send
    + Sync
    + Default
    + Debug
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + AddAssign
    + DivAssign
    + 'static
{
    const ZERO: Self;
    const NEG_INFINITY: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn from_usize(n: usize) -> Self;
    fn is_nan(self) -> bool;
    /// This thread's scratch buffer of this type (see `conv2d::with_scratch`).
    #[doc(hidden)]
    fn scratch() -> &'static LocalKey<RefCell<Vec<Self>>>;
    /// The slice as f32, when `Self` is f32.
    #[doc(hidden)]
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
    #[doc(hidden)]
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;
    #[doc(hidden)]
    fn as_f32_uninit(s: &mut [std::mem::MaybeUninit<Self>]) -> Option<&mut [std::mem::MaybeUninit<f32>]>;
    /// An f32 vector as `Self` (the identity for f32).
    #[doc(hidden)]
    fn from_f32_vec(v: Vec<f32>) -> Vec<Self>;
    /// `Some(v)` as f32, when `Self` is f32.
    #[doc(hidden)]
    fn as_f32_value(self) -> Option<f32>;
}

thread_local! {
    static SCRATCH_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

impl Num for f32 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_usize(n: usize) -> Self {
        n as f32
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn scratch() -> &'static LocalKey<RefCell<Vec<Self>>> {
        &SCRATCH_F32
    }
    fn as_f32(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
        Some(s)
    }
    fn as_f32_uninit(s: &mut [std::mem::MaybeUninit<Self>]) -> Option<&mut [std::mem::MaybeUninit<f32>]> {
        Some(s)
    }
    fn from_f32_vec(v: Vec<f32>) -> Vec<Self> {
        v
    }
    fn as_f32_value(self) -> Option<f32> {
        Some(self)
    }
}

impl Num for f64 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_usize(n: usize) -> Self {
        n as f64
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn scratch() -> &'static LocalKey<RefCell<Vec<Self>>> {
        &SCRATCH_F64
    }
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
    fn as_f32_uninit(_: &mut [std::mem::MaybeUninit<Self>]) -> Option<&mut [std::mem::MaybeUninit<f32>]> {
        None
    }
    fn from_f32_vec(v: Vec<f32>) -> Vec<Self> {
        v.into_iter().map(f64::from).collect()
    }
    fn as_f32_value(self) -> Option<f32> {
        None
    }
}
