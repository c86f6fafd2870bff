"""Entry point st2-rs starts for Python actions (``main.py action``) and sensors
(``main.py sensor``). Its folder is sys.path[0], which makes the ``st2common`` and
``st2reactor`` modules here importable by pack code."""

import sys

if __name__ == "__main__":
    if sys.argv[1:] == ["action"]:
        from st2rs.action import main
    elif sys.argv[1:] == ["sensor"]:
        from st2rs.sensor import main
    else:
        sys.stderr.write("usage: main.py action|sensor\n")
        sys.exit(2)
    sys.argv = sys.argv[:1]
    main()
