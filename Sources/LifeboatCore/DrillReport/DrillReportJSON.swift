import Foundation

/// The JSON report (`report.json`): the whole `DrillReport`, keys sorted, dates ISO 8601.
public enum DrillReportJSON {
    public static func render(_ report: DrillReport) throws -> String {
        String(decoding: try JSON.encode(report), as: UTF8.self) + "\n"
    }

    public static func parse(_ text: String) throws -> DrillReport {
        try JSON.decode(DrillReport.self, from: Data(text.utf8))
    }
}
