import Foundation
import LifeboatCore
import LifeboatIO
import Synchronization

/// Refreshes a run's claims (its lock, its reservation) every `interval` on a thread of its
/// own, so that other processes see the run is alive however long it takes.
///
/// When a claim is gone (another process removed it), or refreshing has failed for longer
/// than half the time after which claims count as stale, the run can no longer be sure that
/// nobody collects its data: the heartbeat cancels it, with the reason.
final class Heartbeat: Sendable {
    typealias Beat = @Sendable (Date) throws -> Void

    private let beats: [Beat]
    private let timings: ClaimTimings
    private let context: RunContext
    private let wakeup = Wakeup()
    private let started = Mutex(false)
    private let finished = Wakeup()

    init(beats: [Beat], timings: ClaimTimings, context: RunContext) {
        self.beats = beats
        self.timings = timings
        self.context = context
    }

    func start() {
        let thread = Thread { [self] in
            defer { finished.wake() }
            run()
        }
        thread.name = "lifeboat-heartbeat"
        started.withLock { $0 = true }
        thread.start()
    }

    /// Stops refreshing, and waits for a refresh in progress to end.
    func stop() {
        wakeup.wake()
        guard started.withLock({ $0 }) else { return }
        finished.wait()
    }

    private func run() {
        var lastSuccess = context.clock()
        while !wakeup.wait(until: Date(timeIntervalSinceNow: timings.refreshInterval)) {
            let now = context.clock()
            do {
                for beat in beats { try beat(now) }
                lastSuccess = now
                context.logger.debug("claims refreshed")
            } catch let error as LifeboatError where error.code == .locked || error.code == .integrity {
                context.logger.error("\(error.message)")
                context.cancellation.cancel(reason: "lost its claim on the repository: \(error.message)")
                return
            } catch {
                context.logger.warning("could not refresh the run's lock and reservation; retrying", metadata: ["error": "\(error)"])
                if now.timeIntervalSince(lastSuccess) > timings.staleAfter / 2 {
                    context.cancellation.cancel(reason: "could not refresh its lock on the repository for \(Int(now.timeIntervalSince(lastSuccess) / 60)) minutes")
                    return
                }
            }
        }
    }
}
