import Crypto
import Foundation

/// One line of a recovery's journal (`state_dir/recover/<runbook>.journal.jsonl`): the header
/// (the runbook's digest, the mode, `--at`), a step's start, a step's end (its `StepResult`),
/// or the run's end. `RecoveryJournal.State` reads the lines back for `--resume`.
public struct JournalEntry: Codable, Sendable, Equatable {
    public enum Event: String, Codable, Sendable {
        case header, start, end, finished
    }

    public var event: Event
    public var time: Date
    /// header: the runbook's name and the SHA-256 of its file's bytes.
    public var runbook: String?
    public var digest: String?
    public var mode: RunbookMode?
    /// header: `--at` (nil: latest).
    public var recoveryTargetTime: Date?
    /// header: the restore points the plan resolved, by restore step id.
    public var restorePoints: [String: Date]?
    /// start: the step's id.
    public var step: String?
    /// end: how the step went.
    public var result: StepResult?
    /// finished: `passed`, `failed` or `aborted`.
    public var outcome: String?

    public init(event: Event, time: Date, runbook: String? = nil, digest: String? = nil, mode: RunbookMode? = nil,
                recoveryTargetTime: Date? = nil, restorePoints: [String: Date]? = nil, step: String? = nil,
                result: StepResult? = nil, outcome: String? = nil) {
        self.event = event
        self.time = time
        self.runbook = runbook
        self.digest = digest
        self.mode = mode
        self.recoveryTargetTime = recoveryTargetTime
        self.restorePoints = restorePoints
        self.step = step
        self.result = result
        self.outcome = outcome
    }

    /// The entry as one JSON line (with its newline).
    public func line() throws -> String {
        String(decoding: try RecoveryJournal.encoder.encode(self), as: UTF8.self) + "\n"
    }
}

public enum RecoveryJournal {
    /// One line per value, times in UTC with milliseconds (a restored point read back must
    /// be the point that was restored).
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(RunbookVariables.format(date))
        }
        return encoder
    }

    public static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = RecoveryTarget.parseTime(text, timeZone: TimeZone(identifier: "UTC")!) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not a time")
            }
            return date
        }
        return decoder
    }

    /// SHA-256 of the runbook file's bytes, in hex: what a journal is bound to.
    public static func digest(of bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }

    /// What a journal says: its header, the steps that ended and how (the last end of each
    /// step wins), the step that started and never ended (the run was killed in it).
    public struct State: Sendable, Equatable {
        public var header: JournalEntry?
        public var results: [String: StepResult] = [:]
        /// In the order they ended.
        public var ended: [String] = []
        public var interrupted: String?
        /// The run's end, when it had one (`passed`, `failed`, `aborted`).
        public var finished: String?

        public init() {}

        /// Steps that passed or were skipped: `--resume` does not run them again.
        public var completed: Set<String> {
            Set(results.filter { $0.value.outcome == .passed || $0.value.outcome == .skipped }.keys)
        }

        /// The restore points recorded by the restore steps that passed, by step id, in the
        /// order they ended.
        public var restoredPoints: [(step: String, point: Date)] {
            ended.compactMap { id in
                guard let result = results[id], result.outcome == .passed, let point = result.restoredPoint else { return nil }
                return (id, point)
            }
        }

        /// Reads the journal's lines; a torn last line (a crash while writing) is skipped.
        public static func read(_ text: String) -> State {
            var state = State()
            let decoder = RecoveryJournal.decoder
            for line in text.split(separator: "\n") where !line.isEmpty {
                guard let entry = try? decoder.decode(JournalEntry.self, from: Data(line.utf8)) else { continue }
                switch entry.event {
                case .header:
                    if state.header == nil { state.header = entry }
                case .start:
                    state.interrupted = entry.step
                    state.finished = nil
                case .end:
                    guard let result = entry.result else { continue }
                    state.results[result.id] = result
                    state.ended.removeAll { $0 == result.id }
                    state.ended.append(result.id)
                    if state.interrupted == result.id { state.interrupted = nil }
                case .finished:
                    state.finished = entry.outcome
                }
            }
            return state
        }
    }
}
