"""Writes tests/fixtures/npy/*.npy with numpy itself, for the .npy reader of
`lpnc predict` (src/data/predict_input.rs): the same 2 examples of shape
[1, 3] in several element types, byte orders and format versions, and one
array in Fortran order (refused). Run from the repository root:

    python3 tests/reference/make_npy_fixtures.py
"""
import numpy as np

values = np.array([[[1, -2, 3]], [[100, 0, -7]]], dtype=np.float64)
out = "tests/fixtures/npy/"
for descr in ["<f4", ">f4", "<f8", ">f8", "|i1", "<i2", ">i4", "<i8", ">i8"]:
    name = descr.replace("<", "le_").replace(">", "be_").replace("|", "")
    np.save(out + name + ".npy", values.astype(descr))
with open(out + "v2_le_f4.npy", "wb") as f:
    np.lib.format.write_array(f, values.astype("<f4"), version=(2, 0))
np.save(out + "unsigned_u2.npy", np.abs(values).astype(">u2"))
np.save(out + "fortran.npy", np.asfortranarray(values.reshape(2, 3)))
