import Foundation
import Glibc
import LifeboatCore
import LifeboatEngine
import Synchronization

/// `SIGINT` and `SIGTERM` cancel the run instead of killing the process, so that it can stop
/// its client programs, abort its uploads, delete its partial data and release its locks.
///
/// Both signals are blocked in every thread (they inherit the mask of the main thread, which
/// blocks them before any other thread exists), and one thread takes them with `sigwait`: no
/// code runs in a signal handler. A second signal ends the process at once; so does a cleanup
/// that takes longer than `cleanupDeadline`, which leaves what it could not remove for
/// `prune`, exactly as a crash would.
enum Signals {
    static let cancellation = Cancellation()
    private static let received = Mutex<Int32?>(nil)
    private static let firstSignalHandler = Mutex<(@Sendable (Int32) -> Void)?>(nil)
    private static let deadline = Mutex<Double>(1.8)
    /// How long cleanup may take after the first signal (1.8 s; a drill stopping its scratch
    /// servers and deleting its scratch objects takes longer).
    static var cleanupDeadline: Double {
        get { deadline.withLock { $0 } }
        set { deadline.withLock { $0 = newValue } }
    }

    /// The signal that cancelled the run, if one did.
    static var signal: Int32? { received.withLock { $0 } }

    /// The exit status of a run ended by `signal`: 128 + its number, as shells report it.
    static func exitStatus(for signal: Int32) -> Int32 { 128 + signal }

    /// Replaces what the first signal does (cancel the run, with a watchdog): the scheduler
    /// daemon stops starting runs and lets running ones finish. A second signal still ends the
    /// process at once.
    static func onFirstSignal(_ handler: @escaping @Sendable (Int32) -> Void) {
        firstSignalHandler.withLock { $0 = handler }
    }

    static func install() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let thread = Thread {
            var waitSet = sigset_t()
            sigemptyset(&waitSet)
            sigaddset(&waitSet, SIGINT)
            sigaddset(&waitSet, SIGTERM)
            while true {
                var received: Int32 = 0
                guard sigwait(&waitSet, &received) == 0 else { continue }
                let number = received
                let first = Self.received.withLock { current -> Bool in
                    defer { if current == nil { current = number } }
                    return current == nil
                }
                let name = number == SIGINT ? "SIGINT" : "SIGTERM"
                if !first {
                    report("\(name) again: stopping now; anything left behind is never listed, and prune removes it")
                    GroupGuardian.killRunningGroups()
                    _exit(exitStatus(for: number))
                }
                if let handler = firstSignalHandler.withLock({ $0 }) {
                    report("\(name): stopping")
                    handler(number)
                    continue
                }
                // A watchdog: cleanup gets a bounded time, then the process ends anyway.
                let seconds = cleanupDeadline
                let watchdog = Thread {
                    Thread.sleep(forTimeInterval: seconds)
                    report("cancelled (\(name)): cleanup did not finish in time; what is left is never listed, and prune removes it")
                    GroupGuardian.killRunningGroups()
                    _exit(exitStatus(for: number))
                }
                watchdog.name = "lifeboat-signal-watchdog"
                watchdog.start()
                cancellation.cancel(reason: name)
            }
        }
        thread.name = "lifeboat-signals"
        thread.start()
    }
}
