import Foundation
import Glibc
import LifeboatCore

/// What the operator answered before a step, or to a `manual` step.
public enum StepDecision: String, Sendable, Equatable {
    /// Before a step: run it; a manual step: done.
    case proceed
    case skip
    case abort
}

/// Asks the operator. `recover` on a terminal asks before each step and waits at `manual`
/// steps (`TerminalPrompter`); `--yes` and `drill` answer for them (`UnattendedPrompter`).
public protocol Prompter: Sendable {
    /// Whether a person answers (a manual step can be confirmed).
    var attended: Bool { get }
    /// Before step `number` of `total`: `continue / skip / abort`.
    func beforeStep(_ step: RunbookStep, number: Int, of total: Int, summary: String) -> StepDecision
    /// A manual step's instruction: `done / skip / abort`.
    func manual(_ step: RunbookStep, instruction: String) -> StepDecision
}

/// `--yes`: every step runs; nobody confirms a manual step (the runner fails a critical one,
/// skips an optional one).
public struct UnattendedPrompter: Prompter {
    public init() {}
    public var attended: Bool { false }
    public func beforeStep(_ step: RunbookStep, number: Int, of total: Int, summary: String) -> StepDecision { .proceed }
    public func manual(_ step: RunbookStep, instruction: String) -> StepDecision { .abort }
}

/// Asks on the terminal: reads a line from `/dev/tty` (else standard input), writes to
/// standard output. Enter is continue (before a step); a manual step needs a word.
public final class TerminalPrompter: Prompter, @unchecked Sendable {
    // Used from the runner's thread only (one question at a time).
    private let input: UnsafeMutablePointer<FILE>?

    public init() {
        input = fopen("/dev/tty", "r") ?? fdopen(dup(0), "r")
    }

    deinit {
        if let input { fclose(input) }
    }

    /// Whether standard input and output are terminals.
    public static var isTerminal: Bool { isatty(0) == 1 && isatty(1) == 1 }

    public var attended: Bool { true }

    public func beforeStep(_ step: RunbookStep, number: Int, of total: Int, summary: String) -> StepDecision {
        while true {
            guard let answer = ask("[\(number)/\(total)] \(step.id): \(summary)\n  continue / skip / abort? [C/s/a] ") else { return .abort }
            switch answer.lowercased() {
            case "", "c", "continue", "y", "yes": return .proceed
            case "s", "skip": return .skip
            case "a", "abort", "q": return .abort
            default: write("  answer c (continue), s (skip) or a (abort)\n")
            }
        }
    }

    public func manual(_ step: RunbookStep, instruction: String) -> StepDecision {
        while true {
            guard let answer = ask("  \(instruction)\n  done / skip / abort? ") else { return .abort }
            switch answer.lowercased() {
            case "d", "done": return .proceed
            case "s", "skip": return .skip
            case "a", "abort": return .abort
            default: write("  answer done, skip or abort\n")
            }
        }
    }

    /// The line answered (trimmed), or nil at the end of the input.
    private func ask(_ question: String) -> String? {
        write(question)
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        guard let input, getline(&line, &capacity, input) >= 0, let line else { return nil }
        return String(cString: line).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}
