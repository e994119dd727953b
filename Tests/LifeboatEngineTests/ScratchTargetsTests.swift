import Foundation
import Glibc
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

@Suite struct ScratchTargetsLeftovers {
    /// The pid of a process that has ended (and been reaped).
    static func deadPID() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }

    /// A drill killed while writing its marker leaves `.<id>.json.<pid>.<n>.tmp` (alone, when it
    /// was the first write); the next drill removes it, and never a live drill's.
    @Test func theNextDrillRemovesTheUnfinishedMarkerOfADeadDrillAndKeepsALiveOnes() throws {
        let state = try TemporaryDirectory("lifeboat-scratch")
        defer { state.remove() }
        let scratch = state.subpath("drills/scratch")
        let dead = ".20261130T064952Z-dead.json.\(try Self.deadPID()).3.tmp"
        let live = ".20261130T064952Z-live.json.\(getpid()).1.tmp"
        try state.write("drills/scratch/\(dead)", "{\"runbook\":")
        try state.write("drills/scratch/\(live)", "{\"runbook\":")

        let result = ScratchTargets.removeLeftovers(stateDirectory: state.path, sources: { _ in nil },
                                                    context: RunContext(logger: quietLogger))
        #expect(result.problems.isEmpty, "\(result.problems)")
        #expect(try directoryEntries(scratch) == [live])
    }
}
