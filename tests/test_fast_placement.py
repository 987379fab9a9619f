"""npnet.fast.placement: arrays at the page offsets asked for, and enable() places the
training's arrays."""

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npnet import fast
from npnet.autoencoder import DenoisingAutoencoder
from npnet.fast.placement import (
    HUGE_FROM_BYTES,
    HUGE_PAGE_BYTES,
    PAGE_BYTES,
    STREAM_BYTES,
    aligned_zeros,
    zeros_alongside,
)
from npnet.layers import Dense, Sequential
from npnet.optim import SGD, Adam

DTYPES = [np.float32, np.float64, np.int16]


def page_offset(array: np.ndarray) -> int:
    return array.ctypes.data % PAGE_BYTES


@st.composite
def requests(draw):
    """(shape, dtype, offset): small shapes, and large ones that get a huge-page region."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    large = draw(st.booleans())
    rows = draw(st.integers(1, 4))
    if large:
        columns = draw(st.integers(HUGE_FROM_BYTES // dtype.itemsize // rows, 2**19))
    else:
        columns = draw(st.integers(0, 3000))
    offset = draw(st.integers(0, PAGE_BYTES // dtype.itemsize - 1)) * dtype.itemsize
    return (rows, columns), dtype, offset


@given(requests())
def test_aligned_zeros_starts_at_the_offset_asked_for(request):
    shape, dtype, offset = request
    array = aligned_zeros(shape, dtype, offset)
    assert array.shape == shape and array.dtype == dtype
    assert array.flags.c_contiguous and array.flags.writeable
    assert not array.any()
    if array.size:
        assert page_offset(array) == offset
    if array.nbytes >= HUGE_FROM_BYTES:  # the region starts at a huge-page boundary
        assert (array.ctypes.data - offset) % HUGE_PAGE_BYTES == 0


def test_aligned_arrays_are_independent_and_writable_to_the_end():
    first, second = aligned_zeros((600, 300), offset=3072), aligned_zeros(5, np.float64, 8)
    assert not np.shares_memory(first, second)
    first[...] = 1.0  # every byte of it is ours (a short region would fault or corrupt)
    second[-1] = 2.0
    assert first.sum() == first.size and second.sum() == 2.0
    assert np.copy(first).base is None  # copies are ordinary arrays


@pytest.mark.parametrize(
    "offset, dtype", [(-8, np.float32), (PAGE_BYTES, np.float32), (6, np.float64)]
)
def test_aligned_zeros_refuses_offsets_outside_a_page_or_between_items(offset, dtype):
    with pytest.raises(ValueError, match="offset must be in"):
        aligned_zeros(4, dtype, offset)


@given(st.sampled_from([(3,), (70, 1000)]), st.integers(1, 3), st.integers(0, 255))
def test_zeros_alongside_is_the_asked_quarter_page_after_its_array(shape, stream, quarter):
    array = aligned_zeros(shape, np.float32, offset=16 * quarter)
    beside = zeros_alongside(array, stream)
    assert beside.shape == array.shape and beside.dtype == array.dtype and not beside.any()
    assert (page_offset(beside) - page_offset(array)) % PAGE_BYTES == stream * STREAM_BYTES


@pytest.mark.parametrize("stream", [0, 4])
def test_zeros_alongside_refuses_other_streams(stream):
    with pytest.raises(ValueError, match="stream must be 1, 2 or 3"):
        zeros_alongside(np.zeros(3), stream)


def streams_apart(*arrays) -> list[int]:
    """Each array's page offset after the first's, in quarter pages."""
    return [(page_offset(a) - page_offset(arrays[0])) % PAGE_BYTES // STREAM_BYTES
            for a in arrays]


@pytest.mark.parametrize("optimizer_class", [Adam, SGD])
def test_enable_puts_dense_and_optimizer_arrays_a_quarter_page_apart(optimizer_class):
    model = Sequential(Dense(300, 200, rng=0))
    optimizer = optimizer_class(model.params, momentum=0.9) if optimizer_class is SGD else (
        optimizer_class(model.params))
    fast.enable(model, optimizer)
    model.forward(np.ones((2, 300), dtype=np.float32))
    model.backward(np.ones((2, 200), dtype=np.float32))
    optimizer.step(model.grads)
    for key, param in model.params.items():
        assert page_offset(param) == 0
        assert optimizer.params[key] is param
        state = [optimizer.state[key][slot] for slot in optimizer.state_slots]
        assert streams_apart(param, model.grads[key], *state) == [0, 1, 2, 3][: 2 + len(state)]


def test_loaded_optimizer_state_is_placed_and_equal_to_the_saved():
    model = DenoisingAutoencoder(hidden=(32, 8), code=4, rng=0)
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    trained = Adam(model.params)
    model.train_step(x, 0)
    trained.step(model.grads)
    restored = Adam(model.params)
    fast.enable(model, restored)
    restored.load_state_dict({k: np.copy(v) for k, v in trained.state_dict().items()})
    for key, param in model.params.items():
        for slot, stream in (("m", 2), ("v", 3)):
            loaded = restored.state[key][slot]
            np.testing.assert_array_equal(loaded, trained.state[key][slot])
            assert streams_apart(param, loaded) == [0, stream]


def test_state_of_another_optimizer_is_refused():
    params = {"w": np.zeros(3)}
    with pytest.raises(KeyError, match="Adam keeps \\['m', 'v'\\], not 'velocity'"):
        Adam(params).load_state_dict({"steps": np.array(1), "velocity/w": np.zeros(3)})


def huge_page_kib(address: int) -> int:
    """AnonHugePages of the mapping holding ``address``, from /proc/self/smaps."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        span = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
        if span:
            inside = int(span[1], 16) <= address < int(span[2], 16)
        elif inside and line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    raise AssertionError(f"no mapping holds address {address:#x}")


def test_large_arrays_get_transparent_huge_pages_where_the_system_gives_them():
    setting = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not setting.exists() or "[never]" in setting.read_text():
        pytest.skip("no transparent huge pages on this system")
    array = aligned_zeros(2 * HUGE_PAGE_BYTES // 4, np.float32, offset=1024)
    array[...] = 1.0  # huge pages are given on the first touch
    assert huge_page_kib(array.ctypes.data) >= HUGE_PAGE_BYTES // 1024
