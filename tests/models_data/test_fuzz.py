"""Property tests: whatever bytes the readers get, they return valid arrays or our clear error."""

import gzip
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tf_assign2 import data
from tf_assign2.errors import UsageError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(payload=st.binary(max_size=400))
def test_png_reader_on_random_bytes(tmp_path, payload):
    path = tmp_path / "Image00000.png"
    path.write_bytes(payload)
    try:
        image = data.decode_png(path)
    except UsageError as e:
        assert str(path) in str(e)
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 1


@FUZZ
@given(
    width=st.integers(1, 40),
    height=st.integers(1, 40),
    mode=st.sampled_from(["L", "RGB", "RGBA", "P", "1", "I;16"]),
    cut=st.integers(0, 200),
)
def test_png_reader_on_real_pngs_of_any_shape_and_mode_even_truncated(tmp_path, width, height, mode, cut):
    path = tmp_path / "Image00000.png"
    Image.new(mode, (width, height)).save(path)
    raw = path.read_bytes()
    if cut:
        path.write_bytes(raw[: max(0, len(raw) - cut)])
    try:
        image = data.decode_png(path)
    except UsageError as e:
        assert cut and str(path) in str(e)
    else:
        assert image.shape == (height, width, 1) and image.dtype == np.uint8


@FUZZ
@given(payload=st.binary(max_size=300), gz=st.booleans())
def test_idx_reader_on_random_bytes(tmp_path, payload, gz):
    path = tmp_path / ("x-idx3-ubyte.gz" if gz else "x-idx3-ubyte")
    path.write_bytes(gzip.compress(payload) if gz else payload)
    try:
        array = data.read_idx(path, data.IDX_IMAGES_MAGIC)
    except UsageError as e:
        assert str(path) in str(e)
    else:
        assert array.dtype == np.uint8 and array.ndim == 3


@FUZZ
@given(shape=st.lists(st.integers(0, 6), min_size=1, max_size=4), extra=st.integers(-5, 5))
def test_idx_reader_on_headers_of_random_shapes(tmp_path, shape, extra):
    magic = 0x0800 + len(shape)
    size = int(np.prod(shape))
    body = bytes(max(0, size + extra))
    path = tmp_path / "y-idx-ubyte"
    path.write_bytes(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in shape) + body)
    try:
        array = data.read_idx(path, magic)
    except UsageError:
        assert len(body) != size
    else:
        assert len(body) == size and array.shape == tuple(shape)
