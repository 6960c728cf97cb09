"""keras-tuner's side of a distributed sweep: the chief's oracle that hands out a sweep's entries, and the
worker's tuner that trains them (``experiments.sweep_cluster`` runs both; it imports this module when a
chief or a worker starts, so that the sweep command loads without keras-tuner and TensorFlow).

The oracle overrides keras-tuner's ``Oracle`` where its behaviour is a search's, not a sweep's: trials
are the sweep's entries in order, a dead worker's entry is taken over, and its files are written
atomically (``save``, ``_save_trial``: keras-tuner has no public hook for where they go).
"""

import json
import time
from pathlib import Path

import keras_tuner
from keras_tuner.engine.base_tuner import BaseTuner
from keras_tuner.engine.trial import TrialStatus

from tf_assign2 import runs
from tf_assign2.experiments.sweep_cluster import IDLE_SECONDS, NEVER, OBJECTIVE, describe, is_alive


class SweepOracle(keras_tuner.Oracle):
    """Hands out a sweep's entries, one trial each, in the sweep's order.

    ``entries``: every entry name (the ``entry`` Choice); ``todo``: those to hand out (the
    others had finished in their run folders when the chief started). ``cluster``: the
    folder of the workers' locks; ``log(event, entry, worker, trial_id, detail)`` is told of
    every hand-out and result.
    """

    def __init__(self, entries, todo, sweep_id, cluster, log=None):
        super().__init__(objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
                         hyperparameters=self.space(entries, sweep_id), seed=1,
                         max_retries_per_trial=0, max_consecutive_failed_trials=NEVER)
        self.entries, self.todo, self.sweep_id = list(entries), list(todo), sweep_id
        self.cluster = Path(cluster)
        self.log = log or (lambda *args: None)
        self.ended_here = set()  # entries whose trial ended since this chief started
        self.handed_at = {}  # trial_id -> time.time() of its latest hand-out (kept across restarts)
        self._restored = {}
        self.verbose = 0  # our own lines instead of keras-tuner's tables

    @staticmethod
    def space(entries, sweep_id):
        hp = keras_tuner.HyperParameters()
        hp.Choice("entry", list(entries))
        hp.Fixed("sweep_id", sweep_id)  # a worker started on another sweep folder sees it differs
        return hp

    def entry_of(self, trial):
        return trial.hyperparameters.values.get("entry")

    def populate_space(self, trial_id):
        running = {self.entry_of(t) for t in self.ongoing_trials.values()}
        for name in self.todo:
            if name not in running and name not in self.ended_here:
                return {"status": TrialStatus.RUNNING, "values": {"entry": name, "sweep_id": self.sweep_id}}
        # The last entries are being trained: wait, in case a worker dies and its entry comes back.
        return {"status": TrialStatus.IDLE if self.ongoing_trials else TrialStatus.STOPPED, "values": None}

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        if tuner_id in self.ongoing_trials:  # keras-tuner gives a worker back its ongoing trial
            trial = super().create_trial(tuner_id)
            self.handed_at[trial.trial_id] = time.time()
            self.log("again", self.entry_of(trial), tuner_id, trial.trial_id, "the same worker ID asked again")
            return trial
        for other, trial in list(self.ongoing_trials.items()):
            if not is_alive(self.cluster, other):  # its worker is gone: this one takes the entry over
                del self.ongoing_trials[other]
                self.tuner_ids.discard(other)
                self.tuner_ids.add(tuner_id)
                self.ongoing_trials[tuner_id] = trial
                trial.status = TrialStatus.RUNNING
                self.save()
                self.handed_at[trial.trial_id] = time.time()
                self.log("taken over", self.entry_of(trial), tuner_id, trial.trial_id, f"from {other}, which is gone")
                return trial
        trial = super().create_trial(tuner_id)
        if trial.status == TrialStatus.RUNNING:
            self.handed_at[trial.trial_id] = time.time()
            self.log("start", self.entry_of(trial), tuner_id, trial.trial_id, "")
        elif trial.status == TrialStatus.STOPPED:
            self.log("stop", "", tuner_id, "", "no entries left")
        return trial

    @keras_tuner.synchronized
    def end_trial(self, trial):
        worker = next((w for w, t in self.ongoing_trials.items() if t.trial_id == trial.trial_id), "")
        super().end_trial(trial)
        trial = self.trials[trial.trial_id]
        entry = self.entry_of(trial)
        self.ended_here.add(entry)
        since = self.handed_at.get(trial.trial_id)
        took = f" in {time.time() - since:.0f} s" if since else ""  # since its (latest) hand-out
        self.log("end", entry, worker, trial.trial_id, describe(trial) + took)

    def score_trial(self, trial):
        if trial.metrics.exists("diverged") and trial.metrics.get_last_value("diverged"):
            trial.score, trial.best_step = float("-inf"), 0  # a result, ranked below every completed entry
            return
        super().score_trial(trial)

    @keras_tuner.synchronized
    def progress(self):
        """(entries ended since this chief started, entries left to hand out or finish)."""
        ended = sum(1 for name in self.todo if name in self.ended_here)
        return ended, len(self.todo) - ended

    @keras_tuner.synchronized
    def done(self):
        """Every entry to do has ended and no worker holds one."""
        return not self.ongoing_trials and all(name in self.ended_here for name in self.todo)

    # keras-tuner's state, written atomically (a chief killed mid-write leaves the previous file)

    def save(self):
        runs.write_atomic(self._get_oracle_fname(), json.dumps(self.get_state()))

    def _save_trial(self, trial):
        runs.write_atomic(Path(self._get_trial_dir(trial.trial_id)) / "trial.json", json.dumps(trial.get_state()))

    def get_state(self):
        return {**super().get_state(), "handed_at": self.handed_at}

    def set_state(self, state):
        super().set_state(state)
        self._restored = dict(self.ongoing_trials)
        self.handed_at = dict(state.get("handed_at", {}))

    def reload(self):
        """keras-tuner's reload queues the running trials for the next worker that asks; here
        each stays with its worker ID, which reports it when done (or is taken over once dead)."""
        super().reload()
        self.ongoing_trials, self._retry_queue = self._restored, []
        self.tuner_ids = set(self.ongoing_trials)
        self.hyperparameters = self.space(self.entries, self.sweep_id)  # the sweep file may list new entries


class SweepWorker(BaseTuner):
    """keras-tuner's worker loop (ask, run, report, ask ...) with ``run_entry(name) -> metrics``."""

    def __init__(self, run_entry, directory, project_name):
        oracle = keras_tuner.Oracle(objective=keras_tuner.Objective(OBJECTIVE, direction="max"))
        super().__init__(oracle=oracle, directory=directory, project_name=project_name)
        self.run_entry, self.failure, self.asked, self.ran = run_entry, None, False, 0

    def pre_create_trial(self):
        if self.asked:  # the previous answer was "wait" (IDLE): keras-tuner would ask again at once
            time.sleep(IDLE_SECONDS)
        self.asked = True

    def on_trial_begin(self, trial):
        self.asked = False

    def run_trial(self, trial, *args, **kwargs):
        try:
            metrics = self.run_entry(trial.hyperparameters.values["entry"])
        except Exception as e:  # stop this worker (its entry waits for it, or for another worker)
            self.failure = e
            raise keras_tuner.errors.FatalError(str(e)) from e
        self.ran += 1
        return metrics

    def save(self):
        """Nothing of a worker's is kept: the chief and the run folders hold the state."""
