"""keras-tuner's oracle service as this package's chiefs serve it: refusing calls it cannot trust.

keras-tuner's gRPC service (``OracleServicer``) hands every call to the oracle as it comes. Two
things make that unsafe to expose even on 127.0.0.1:

* ``keras_tuner.synchronized`` takes the oracle's lock and has no ``finally``: a call that raises
  inside (an ``UpdateTrial`` for a trial that does not exist) keeps the lock forever, and the
  chief's own next call of the oracle waits for it forever: one malformed request wedged a chief.
* Any tuner ID may ask for a trial, so a stranger could take an entry that no worker then trains.

``GuardedServicer`` checks each request against the oracle's state before the oracle sees it,
refuses what does not fit (gRPC ``INVALID_ARGUMENT``, the oracle untouched), and releases a lock
that a failing call left held. The chiefs also listen on a loopback address only
(``tune.distribution``): workers on other machines reach them through SSH tunnels.
"""

import functools
import re
import socket
import threading
import time

from tf_assign2.errors import UsageError

TUNER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@functools.cache
def guarded_servicer_class():
    """``GuardedServicer``, made on first use so this module loads without keras-tuner (TensorFlow)."""
    import grpc
    from keras_tuner.src.distribute.oracle_chief import OracleServicer
    from keras_tuner.src.engine import oracle as oracle_module

    class GuardedServicer(OracleServicer):
        """keras-tuner's service, each call checked; ``admit(tuner_id)`` (optional) says which tuner IDs
        may ask for a trial (a sweep's chief: workers that hold their lock)."""

        def __init__(self, oracle, admit=None):
            super().__init__(oracle)
            self.admit = admit or (lambda tuner_id: True)

        def _refuse(self, context, why):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, why)

        def _call(self, handler, request, context):
            try:
                return handler(request, context)
            except Exception as e:  # the request did not fit after all: the oracle must not stay locked
                self._release()
                self._refuse(context, f"refused: {type(e).__name__}")

        def _release(self):
            """Free the oracle's lock if the failed call left it held (keras-tuner's lock has no finally)."""
            lock = oracle_module.LOCKS[self.oracle]
            if oracle_module.THREADS[self.oracle] is not None and lock.locked():
                oracle_module.THREADS[self.oracle] = None
                lock.release()

        def _known_trial(self, trial_id, context, running=True):
            trials = {t.trial_id for t in self.oracle.ongoing_trials.values()} if running else set(self.oracle.trials)
            if trial_id not in trials:
                self._refuse(context, f"refused: no {'running ' if running else ''}trial {trial_id[:40]!r}")

        def CreateTrial(self, request, context):
            if not TUNER_ID.fullmatch(request.tuner_id) or not self.admit(request.tuner_id):
                self._refuse(context, "refused: not a worker of this chief")
            return self._call(super().CreateTrial, request, context)

        def UpdateTrial(self, request, context):
            self._known_trial(request.trial_id, context)
            return self._call(super().UpdateTrial, request, context)

        def EndTrial(self, request, context):
            self._known_trial(request.trial.trial_id, context)
            return self._call(super().EndTrial, request, context)

        def GetTrial(self, request, context):
            self._known_trial(request.trial_id, context, running=False)
            return self._call(super().GetTrial, request, context)

        def UpdateSpace(self, request, context):
            self._refuse(context, "refused: the search space is the chief's")

        def GetSpace(self, request, context):
            return self._call(super().GetSpace, request, context)

        def GetBestTrials(self, request, context):
            return self._call(super().GetBestTrials, request, context)

    return GuardedServicer


def serve_guarded_in_keras_tuner():
    """keras-tuner's own chief (a search's ``tuner.search`` in chief mode) serving ``GuardedServicer``."""
    from keras_tuner.src.distribute import oracle_chief

    oracle_chief.OracleServicer = guarded_servicer_class()


def listen_check(host, port):
    """Refuse a chief's address it cannot listen on (a port taken, an address of another machine) in
    one line, before anything is made: asked of the operating system, since gRPC would log to stderr
    (a sweep's chief) or give up without a word (keras-tuner's)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as e:
        raise UsageError(f"--chief {host}:{port}: cannot listen there ({e.strerror or e}; the port may be taken)") \
            from None


def announce_when_listening(host, port, line, timeout=300.0):
    """Print ``line`` once ``host:port`` accepts a connection, from a background thread.

    keras-tuner's chief starts its gRPC server deep inside ``tuner.search``, after the tuner and
    its oracle are built; a line printed before that would tell a worker (or a test) to connect to a
    port that still refuses it. A chief that never listens within ``timeout`` prints nothing.
    """
    def wait():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host, int(port)), timeout=1):
                    print(line, flush=True)
                    return
            except OSError:
                time.sleep(0.05)

    threading.Thread(target=wait, name="announce-chief", daemon=True).start()
