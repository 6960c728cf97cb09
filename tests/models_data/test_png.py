"""The batched PNG fast path against Pillow, the reference: same arrays, or Pillow decides."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tf_assign2 import data
from tf_assign2.data import png
from tf_assign2.errors import UsageError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _pillow(path, mode="L"):
    image = Image.open(path).convert(mode)
    return np.asarray(image).reshape(image.height, image.width, -1)


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def _encode(image, filters):
    """A PNG whose row r uses filter ``filters[r]`` - Pillow's encoder picks its own, so write our own."""
    height, width, channels = image.shape
    pixels = image.reshape(height, width * channels).astype(np.int16)
    rows = []
    for r, kind in enumerate(filters):
        x, up = pixels[r], pixels[r - 1] if r else np.zeros_like(pixels[0])
        left = np.concatenate([np.zeros(channels, np.int16), x[:-channels]])
        up_left = np.concatenate([np.zeros(channels, np.int16), up[:-channels]])
        guess = [0, left, up, (left + up) >> 1, png._paeth(left, up, up_left)][kind]
        rows.append(bytes([kind]) + ((x - guess) & 0xFF).astype(np.uint8).tobytes())
    header = struct.pack(">IIBBBBB", width, height, 8, {1: 0, 3: 2}[channels], 0, 0, 0)
    return png.SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"".join(rows))) + _chunk(b"IEND", b"")


def test_fast_path_equals_pillow_on_every_shared_image(data_root):
    kinds = set()
    for name in ("CIFAR10", "MNIST"):
        paths = [str(p) for p in sorted((data_root / name).glob("*/*/*.png"))]
        assert len(paths) == 11000
        contents = [Path(p).read_bytes() for p in paths]
        assert all(png.inflate(c) is not None for c in contents)  # every file takes the fast path
        kinds.update(b"".join(png.inflate(c)[1][::29] for c in contents))
        np.testing.assert_array_equal(np.stack(data.decode_pngs(paths)), np.stack([_pillow(p) for p in paths]))
    assert kinds == {0, 1, 2, 3, 4}  # the images use all five row filters


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_every_row_filter_gray_and_rgb(tmp_path, channels, mode):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 15, 11, channels), dtype=np.uint8)
    images[0] = 255  # saturated rows: the modulo-256 arithmetic
    paths = []
    for i, image in enumerate(images):
        filters = rng.integers(0, 5, size=15).tolist()  # a mix of filters across rows and images
        filters[:5] = [(i + k) % 5 for k in range(5)]
        paths.append(tmp_path / f"Image{i:05d}.png")
        paths[-1].write_bytes(_encode(image, filters))
    decoded = data.decode_pngs(paths, mode)
    for path, image, ours in zip(paths, images, decoded):
        np.testing.assert_array_equal(_pillow(path, mode), image)  # the test's encoder is right ...
        np.testing.assert_array_equal(ours, image)  # ... and so is the fast path


def test_other_pngs_go_to_pillow(tmp_path):
    """Palette, alpha, 16-bit, mode conversion, a bad CRC: not the fast path, same answer as Pillow
    (16-bit: scaled to 8 bits, v * 255 / 65535, where Pillow's own conversion clips to white)."""
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, size=(9, 7), dtype=np.uint8)
    cases = {
        "palette": Image.fromarray(gray).convert("P"),
        "alpha": Image.fromarray(gray).convert("LA"),
        "rgba": Image.fromarray(gray).convert("RGBA"),
        "16bit": Image.fromarray(gray.astype(np.uint16) * 257),
        "rgb-as-L": Image.fromarray(np.stack([gray, 255 - gray, gray // 2], -1)),
    }
    for name, image in cases.items():
        path = tmp_path / f"{name}.png"
        image.save(path)
        expect_fast = name == "rgb-as-L"
        assert (png.inflate(path.read_bytes()) is not None) == expect_fast, name
        expected = gray[..., None] if name == "16bit" else _pillow(path)  # 16-bit: (gray * 257) * 255 / 65535
        np.testing.assert_array_equal(data.decode_png(path), expected, err_msg=name)
    bad_crc = bytearray(_encode(gray[..., None], [4] * 9))
    bad_crc[-13] ^= 1  # the IDAT CRC
    assert png.inflate(bytes(bad_crc)) is None


@FUZZ
@given(image=st.integers(0, 2**32 - 1), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=3))
def test_damaged_files_decode_exactly_when_pillow_does(tmp_path, image, flips):
    """Flip random bytes of a real-looking PNG: ours equals Pillow's array, or both refuse the file."""
    rng = np.random.default_rng(image)
    pixels = rng.integers(0, 256, size=(int(rng.integers(1, 20)), int(rng.integers(1, 20)), 1), dtype=np.uint8)
    content = bytearray(_encode(pixels, rng.integers(0, 5, size=len(pixels)).tolist()))
    for position, xor in flips:
        content[position % len(content)] ^= xor
    path = tmp_path / "Image00000.png"
    path.write_bytes(bytes(content))
    try:
        reference = _pillow(path)
    except Exception:  # noqa: BLE001 - whatever Pillow raises, we must refuse the file too
        with pytest.raises(UsageError, match="Image00000.png"):
            data.decode_png(path)
    else:
        np.testing.assert_array_equal(data.decode_png(path), reference)


def test_pillow_saved_pngs_of_random_content(tmp_path):
    rng = np.random.default_rng(2)
    for i, mode in enumerate(["L", "RGB"] * 4):
        shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40))) + ((3,) if mode == "RGB" else ())
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        pixels[: shape[0] // 2] //= 16  # smooth areas make Pillow choose other filters than noise does
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", optimize=bool(i % 2))
        path = tmp_path / f"{i}.png"
        path.write_bytes(buffer.getvalue())
        assert png.inflate(buffer.getvalue()) is not None
        np.testing.assert_array_equal(data.decode_png(path, mode), pixels.reshape(shape[0], shape[1], -1))
