"""Entry point st2-rs starts for Python actions (``main.py action``) and sensors
(``main.py sensor``). Its folder is sys.path[0], which makes the ``st2common`` and
``st2reactor`` modules here importable by pack code."""

import sys

if __name__ == "__main__":
    # This package's own bytecode is cached even under PYTHONDONTWRITEBYTECODE (it is
    # compiled once per content and interpreter); pack code follows the caller's setting.
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    if sys.argv[1:] == ["action"]:
        from st2rs.action import main
        import st2common.runners.base_action  # noqa: F401
    elif sys.argv[1:] == ["sensor"]:
        from st2rs.sensor import main
        import st2reactor.sensor.base  # noqa: F401
    else:
        sys.stderr.write("usage: main.py action|sensor\n")
        sys.exit(2)
    sys.dont_write_bytecode = dont_write
    sys.argv = sys.argv[:1]
    main()
