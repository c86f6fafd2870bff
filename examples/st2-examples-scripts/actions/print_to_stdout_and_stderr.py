import sys
import time

from st2common.runners.base_action import Action


class PrintToStdoutAndStderrAction(Action):
    def run(self, count=100, sleep_delay=0.5):
        for n in range(1, count + 1):
            stream = sys.stderr if n % 2 == 1 else sys.stdout
            stream.write("%s line %d\n" % ("stderr" if n % 2 == 1 else "stdout", n))
            stream.flush()
            time.sleep(sleep_delay)
