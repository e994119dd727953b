import Foundation
import Glibc
import LifeboatCore
import Logging
import Synchronization

/// Writes log lines to standard error: JSON objects (one per line) when standard error is
/// not a terminal, readable text when it is. Every line passes through `Secrets.redact`.
public struct LifeboatLogHandler: LogHandler {
    public enum Format: Sendable { case json, text }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let label: String
    let format: Format

    private static let lock = Mutex<Void>(())

    public init(label: String, level: Logger.Level, format: Format) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    /// Sets up swift-log for the command line: `LOG_LEVEL` (`debug|info|warn|error`, default
    /// `info`), JSON when standard error is not a terminal. Only the executable calls this.
    public static func bootstrap(environment: [String: String] = ProcessInfo.processInfo.environment, verbose: Bool = false) {
        let level = verbose ? .debug : (environment["LOG_LEVEL"].flatMap(parseLevel) ?? .info)
        let format: Format = isatty(STDERR_FILENO) != 0 ? .text : .json
        LoggingSystem.bootstrap { label in LifeboatLogHandler(label: label, level: level, format: format) }
    }

    public static func parseLevel(_ text: String) -> Logger.Level? {
        switch text.lowercased() {
        case "trace": return .trace
        case "debug": return .debug
        case "info": return .info
        case "notice": return .notice
        case "warn", "warning": return .warning
        case "error": return .error
        case "critical": return .critical
        default: return nil
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let line = Secrets.redact(Self.render(format: format, level: event.level, message: "\(event.message)",
                                              metadata: merged, date: Date()))
        switch format {
        case .text:
            TerminalLine.writeLine(line)  // above a progress line, if one is shown
        case .json:
            Self.lock.withLock { _ in
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
        }
    }

    static func render(format: Format, level: Logger.Level, message: String, metadata: Logger.Metadata, date: Date) -> String {
        let timestamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
        switch format {
        case .json:
            var object: [String: Any] = ["ts": timestamp, "level": "\(level)", "msg": message]
            for (key, value) in metadata { object[key] = jsonValue(value) }
            guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
                return "{\"level\":\"\(level)\",\"msg\":\"(unencodable log line)\"}"
            }
            return String(decoding: data, as: UTF8.self)
        case .text:
            let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "\(timestamp) \(level) \(message)\(fields.isEmpty ? "" : " " + fields)"
        }
    }

    static func jsonValue(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return a.map(jsonValue)
        case .dictionary(let d): return d.mapValues(jsonValue)
        }
    }
}
