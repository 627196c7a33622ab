"""SPEC.md §8: the backend is a spec.Backend of this protocol version, and says what it is."""

import numpy as np

from spec import PROTOCOL_VERSION, Backend


def test_is_a_backend_of_this_protocol_version(backend):
    assert isinstance(backend, Backend), f"{backend!r} lacks part of the spec.Backend protocol"
    assert backend.protocol_version == PROTOCOL_VERSION, (
        f"{backend.name} implements protocol {backend.protocol_version!r}; "
        f"this suite certifies protocol {PROTOCOL_VERSION!r}"
    )
    for attribute in ("name", "device", "framework_version"):
        value = getattr(backend, attribute)
        assert isinstance(value, str) and value, (
            f"{attribute} must be a non-empty string: {value!r}"
        )


def test_asarray_and_to_numpy_copy_both_ways(backend, dtype):
    source = np.arange(6, dtype=dtype).reshape(2, 3)
    native = backend.asarray(source)
    source[0, 0] = 99  # asarray copied: the native array does not see this
    back = backend.to_numpy(native)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3) and back[0, 0] == 0
    back[0, 1] = 99  # to_numpy copied: the native array does not see this either
    assert backend.to_numpy(native)[0, 1] == 1
    assert backend.is_native(native)
    assert not backend.is_native(source.tolist())
