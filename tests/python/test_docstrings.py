"""Every public module, class, function, method and property of the SDK has a docstring.

Walks every module of the amld package except the generated amld.v1 stubs;
"public" means a name without a leading underscore (plus __init__, which
says what a constructor does).
"""

import importlib
import inspect
import pkgutil

import amld


def sdk_modules():
    names = ["amld"]
    for info in pkgutil.walk_packages(amld.__path__, "amld."):
        if info.name == "amld.v1" or info.name.startswith("amld.v1."):
            continue
        names.append(info.name)
    return [importlib.import_module(name) for name in names]


def public_members(module):
    """(qualified name, object) of what the module defines and its classes' members."""
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield "%s.%s" % (module.__name__, name), obj
        elif inspect.isclass(obj):
            yield "%s.%s" % (module.__name__, name), obj
            for member_name, member in vars(obj).items():
                if member_name.startswith("_") and member_name != "__init__":
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if inspect.isfunction(member) or isinstance(member, property):
                    yield "%s.%s.%s" % (module.__name__, name, member_name), member


def test_every_public_class_and_method_has_a_docstring():
    modules = sdk_modules()
    found = {m.__name__ for m in modules}
    # The walk sees the SDK (a broken walk must not pass by finding nothing).
    assert {"amld.core", "amld.core.run", "amld.core.runconfig", "amld.exceptions"} <= found
    missing = [m.__name__ for m in modules if not (m.__doc__ or "").strip()]
    checked = 0
    for module in modules:
        for qualified, obj in public_members(module):
            checked += 1
            if not (inspect.getdoc(obj) or "").strip() or obj.__doc__ is None:
                missing.append(qualified)
    assert checked > 80
    assert missing == [], "no docstring: " + ", ".join(missing)
