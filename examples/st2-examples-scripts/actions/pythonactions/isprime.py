import math

from st2common.runners.base_action import Action


class PrimeCheckerAction(Action):
    def run(self, value=0):
        if value < 2:
            return False
        for divisor in range(2, int(math.isqrt(value)) + 1):
            if value % divisor == 0:
                return False
        return True
