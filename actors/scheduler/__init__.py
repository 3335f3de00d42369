"""The SchedulerActor: leader-only firing, claim before fire."""
