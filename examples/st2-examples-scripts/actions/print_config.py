from st2common.runners.base_action import Action


class PrintConfigAction(Action):
    def run(self):
        print("=========")
        print(sorted(self.config.keys()))
        print("region=%s" % self.config.get("region"))
        print("=========")
        return {"region": self.config.get("region")}
