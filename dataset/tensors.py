"""NumPy arrays as torch tensors on a device, for the code that works on NumPy arrays and torch
tensors alike (the loaders, preprocessing). torch is imported here, when the first tensor
arrives, not at the top: the NumPy trainer, which never has one, never pays torch's import."""


def as_tensor(array, device=None):
    """The NumPy array as a torch tensor: sharing its memory, or copied to device if given."""
    import torch  # on first use only: see the docstring above
    tensor = torch.from_numpy(array)
    return tensor if device is None else tensor.to(device)


_on_device = {}


def constants_on(device, *arrays):
    """The arrays as tensors on device, copied there once per array and device."""
    key = (str(device), *map(id, arrays))
    if key not in _on_device:
        _on_device[key] = arrays, [as_tensor(a, device) for a in arrays]
    return _on_device[key][1]
