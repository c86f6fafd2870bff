"""Loading a pack's Python file as a module, as StackStorm's plugin loader does."""

import os
import sys


def load_module(file_path):
    """Execute ``file_path`` as a module named after the file; its folder joins sys.path."""
    directory = os.path.dirname(os.path.realpath(file_path))
    if directory not in sys.path and directory + os.sep not in sys.path:
        sys.path.append(directory)
    name = os.path.basename(file_path)
    if not name.endswith(".py"):
        raise ValueError('"%s" is not a Python file (.py)' % file_path)
    name = name[: -len(".py")]
    with open(file_path, "rb") as f:
        source = f.read()
    module = type(sys)(name)
    module.__file__ = file_path
    sys.modules[name] = module
    exec(compile(source, file_path, "exec"), module.__dict__)
    return module


def implements(klass, base):
    """Whether ``klass`` implements every abstract method of ``base``."""
    for name in getattr(base, "__abstractmethods__", ()):
        method = getattr(klass, name, None)
        if method is None or getattr(method, "__isabstractmethod__", False):
            return False
    return True


def load_failure(kind, file_path, error):
    """An exception of ``error``'s type whose message says which file failed to load."""
    import traceback

    message = (
        'Failed to load %s class from file "%s" (the file is missing or has invalid '
        "syntax): %s\n\n%s" % (kind, file_path, error, traceback.format_exc())
    )
    try:
        return type(error)(message)
    except Exception:
        return Exception(message)
