import Foundation
import Glibc
import LifeboatCore
import LifeboatEngine
import LifeboatIO
import Testing
import TestSupport

@Suite struct RecoveryJournalFiles {
    static let t0 = Date(timeIntervalSince1970: 1_764_000_000)

    static func lines(_ path: String) throws -> [String] {
        try readTextFile(path).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    @Test func twoRecoveriesEndingInTheSameSecondKeepBothJournals() throws {
        let state = try TemporaryDirectory("lifeboat-journal")
        defer { state.remove() }
        var kept: [String] = []
        for step in ["first", "second", "third"] {
            let journal = try RecoveryJournalFile(stateDirectory: state.path, runbook: "dr")
            try journal.append(JournalEntry(event: .start, time: Self.t0, step: step))
            kept.append(try journal.archive(time: Self.t0))
        }
        let directory = state.path + "/recover/"
        #expect(kept == [directory + "dr.20251124T160000Z.journal.jsonl", directory + "dr.20251124T160000Z_2.journal.jsonl",
                         directory + "dr.20251124T160000Z_3.journal.jsonl"])
        // Each kept journal is its own recovery's, and they sort in the order they ended.
        let steps = try kept.map { RecoveryJournal.State.read(try readTextFile($0)).interrupted }
        #expect(steps == ["first", "second", "third"])
        #expect(kept.sorted() == kept)
        #expect(!pathExists(RecoveryJournalFile.path(stateDirectory: state.path, runbook: "dr")))
    }

    @Test func anAppendAfterATornLastLineIsNotLost() throws {
        let state = try TemporaryDirectory("lifeboat-journal")
        defer { state.remove() }
        let path = RecoveryJournalFile.path(stateDirectory: state.path, runbook: "dr")
        do {
            let journal = try RecoveryJournalFile(stateDirectory: state.path, runbook: "dr")
            try journal.append(JournalEntry(event: .header, time: Self.t0, runbook: "dr", digest: "abc", mode: .recover))
        }
        // A crash half-way through writing the start of step 'one'.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(#"{"event":"start","st"#.utf8))
        try handle.close()

        let journal = try RecoveryJournalFile(stateDirectory: state.path, runbook: "dr")
        try journal.append(JournalEntry(event: .start, time: Self.t0, step: "two"))
        let read = try journal.read()
        #expect(read.header?.digest == "abc")
        #expect(read.interrupted == "two", "\((try? readTextFile(path)) ?? "")")

        // The same for a record file appended by path (audit log, run and drill history).
        let audit = state.path + "/audit.jsonl"
        _ = FileManager.default.createFile(atPath: audit, contents: Data(#"{"torn":"#.utf8))
        try appendLine(Array("{\"whole\":1}\n".utf8), toFile: audit, what: "the audit log", hint: "")
        #expect(try Self.lines(audit) == [#"{"torn":"#, #"{"whole":1}"#, ""])
    }
}
