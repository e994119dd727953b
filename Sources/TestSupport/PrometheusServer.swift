import Foundation
import Glibc
import LifeboatCore
import LifeboatIO

/// A real Prometheus (Debian package `prometheus`) on 127.0.0.1 for one test: it scrapes the
/// given targets every second into a temporary directory, and answers instant queries.
/// Missing `prometheus` is an error, never a silent skip.
public final class PrometheusServer: Sendable {
    public let port: Int
    public let directory: String
    let child: ChildProcess

    init(port: Int, directory: String, child: ChildProcess) {
        self.port = port
        self.directory = directory
        self.child = child
    }

    static let installHint = "Install Prometheus (apt-get install prometheus) and run the tests again."

    /// Starts Prometheus scraping `targets` (`host:port`) at `/metrics` every second, and waits
    /// until it is ready. `credentialsFile`: a file whose content Prometheus sends as
    /// `Authorization: Bearer …` (`authorization: { credentials_file: … }`).
    public static func start(scraping targets: [String], credentialsFile: String? = nil) throws -> PrometheusServer {
        let program = try requireProgram("prometheus", in: ["/usr/bin", "/usr/local/bin"], hint: installHint)
        let directory = try TemporaryDirectory("lifeboat-prometheus").path
        let list = targets.map { "'\($0)'" }.joined(separator: ", ")
        let authorization = credentialsFile.map { "\n    authorization: { credentials_file: '\($0)' }" } ?? ""
        try """
            global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }
            scrape_configs:
              - job_name: lifeboat
                static_configs: [ { targets: [\(list)] } ]\(authorization)
            """.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
        var lastError = ""
        for _ in 0..<3 {
            let port = try freeLoopbackPort()
            let child = try ChildProcess.spawn(program, [
                "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
                "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
            ], stdin: .null, stdout: .null)
            let server = PrometheusServer(port: port, directory: directory, child: child)
            let deadline = Date(timeIntervalSinceNow: 30)
            while Date() < deadline {
                if (try? RawHTTP.request(port: port, "/-/ready", timeout: 1))?.status == 200 { return server }
                usleep(50_000)
            }
            child.stop()
            _ = try? child.wait()
            lastError = child.stderrText
        }
        try? FileManager.default.removeItem(atPath: directory)
        throw LifeboatError(.process, "unable to start Prometheus; its output:\n\(lastError)")
    }

    /// One sample of an instant query's answer.
    public struct Sample: Sendable {
        public var labels: [String: String]
        public var value: Double
    }

    /// `/api/v1/query?query=…`: the vector it answers.
    public func query(_ expression: String) throws -> [Sample] {
        let encoded = expression.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? expression
        let response = try RawHTTP.request(port: port, "/api/v1/query?query=\(encoded)")
        guard response.status == 200,
              let json = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any],
              let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]]
        else { throw LifeboatError(.io, "Prometheus answered \(response.status) to \(expression): \(response.body.prefix(500))") }
        return result.compactMap { entry in
            guard let labels = entry["metric"] as? [String: String], let pair = entry["value"] as? [Any], pair.count == 2,
                  let text = pair[1] as? String, let value = Double(text)
            else { return nil }
            return Sample(labels: labels, value: value)
        }
    }

    /// Stops the server and removes its directory.
    public func stop() {
        child.stop()
        _ = try? child.wait()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
