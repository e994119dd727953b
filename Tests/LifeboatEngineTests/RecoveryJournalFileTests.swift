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
