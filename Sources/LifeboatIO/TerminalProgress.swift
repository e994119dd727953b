import Foundation
import Glibc
import LifeboatCore
import Synchronization

/// The one status line at the bottom of a terminal: `\r`, the text, erase to the end of the
/// line. Log lines written while it is shown clear it first and draw it again after, so the
/// two never mix. Shared by the log handler and `TerminalProgress`.
public enum TerminalLine {
    private static let state = Mutex<String?>(nil)

    /// Writes a whole line to standard error above the status line.
    public static func writeLine(_ text: String) {
        state.withLock { current in
            var output = current == nil ? "" : "\r\u{1B}[K"
            output += text + "\n"
            if let current { output += current }
            FileHandle.standardError.write(Data(output.utf8))
        }
    }

    /// Shows (or, with nil, removes) the status line.
    static func show(_ text: String?) {
        state.withLock { current in
            guard current != text else { return }
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + (text ?? "")).utf8))
            current = text
        }
    }
}

/// Progress on a terminal: `backup data/0001.tar.zst (mcphub): 412.0 MiB, 96.3 MiB/s`,
/// redrawn at most four times a second.
public final class TerminalProgress: ProgressReporter {
    private struct Item {
        var started: ContinuousClock.Instant
        var lastDrawn: ContinuousClock.Instant?
    }

    private let items = Mutex<[String: Item]>([:])

    public init() {}

    /// Whether standard error is a terminal (progress is shown only there).
    public static var isTerminal: Bool { isatty(STDERR_FILENO) != 0 }

    public func update(_ what: String, done: Int64, total: Int64?) {
        let now = ContinuousClock.now
        let line: String? = items.withLock { items in
            var item = items[what] ?? Item(started: now, lastDrawn: nil)
            defer { items[what] = item }
            if let last = item.lastDrawn, now - last < .milliseconds(250) { return nil }
            item.lastDrawn = now
            let seconds = Double((now - item.started).components.seconds) + Double((now - item.started).components.attoseconds) / 1e18
            var text = "\(what): \(formatBytes(done))"
            if let total, total > 0 { text += " of \(formatBytes(total)) (\(done * 100 / total)%)" }
            if seconds > 0.5 { text += ", \(formatBytes(Int64(Double(done) / seconds)))/s" }
            return text
        }
        if let line { TerminalLine.show(line) }
    }

    public func finish(_ what: String) {
        items.withLock { _ = $0.removeValue(forKey: what) }
        TerminalLine.show(nil)
    }
}
