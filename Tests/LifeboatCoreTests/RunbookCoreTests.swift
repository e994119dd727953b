import Foundation
import Testing
@testable import LifeboatCore

@Suite struct HealthResponseJudging {
    func judge(_ status: Int, _ body: String, statuses: [Int] = [200], acceptDegraded: Bool = false,
               json: [(String, String)] = []) -> CheckOutcome {
        HealthResponse.evaluate(status: status, body: Array(body.utf8), statuses: statuses, acceptDegraded: acceptDegraded,
                                expectations: json.map { (path: $0.0, expected: $0.1) })
    }

    @Test func theHealthFormatDecidesByItsStatusAndNamesEveryDependencyNotOK() {
        #expect(judge(200, #"{"status": "healthy", "checks": {"database": "ok", "redis": "ok"}}"#)
            == .passed("HTTP 200, status 'healthy'"))
        #expect(judge(503, #"{"status": "degraded", "checks": {"database": "ok", "redis": "down", "s3": {"status": "error", "error": "timeout"}}}"#)
            == .failed("HTTP 503, status 'degraded'; not ok: redis (down), s3 (error: timeout)"))
        #expect(judge(503, #"{"status": "degraded", "checks": {"database": "ok", "redis": "down"}}"#, acceptDegraded: true)
            == .passed("HTTP 503, status 'degraded'; not ok: redis (down)"))
        #expect(judge(503, #"{"status": "unhealthy", "checks": {"database": {"status": "fail"}}}"#, acceptDegraded: true)
            == .failed("HTTP 503, status 'unhealthy'; not ok: database (fail)"))
        #expect(judge(500, #"{"status": "healthy", "checks": {}}"#) == .failed("HTTP 500, status 'healthy' (expected 200)"))
        #expect(judge(503, #"{"status": "unhealthy"}"#) == .failed("HTTP 503, status 'unhealthy' (no failing entry in 'checks')"))
    }

    @Test func anyOtherBodyNeedsAnAcceptedStatusAndMeetsTheJSONExpectations() {
        #expect(judge(204, "", statuses: [200, 204]) == .passed("HTTP 204"))
        #expect(judge(404, "not found") == .failed("HTTP 404 (expected 200): not found"))
        #expect(judge(200, #"{"version": "1.2", "ready": true, "count": 3, "items": [{"name": "a"}]}"#,
                      json: [("version", "1.2"), ("ready", "true"), ("count", "3"), ("items.0.name", "a")])
            == .passed("HTTP 200"))
        #expect(judge(200, #"{"ready": false}"#, json: [("ready", "true")]) == .failed("HTTP 200: 'ready' is 'false', expected 'true'"))
        #expect(judge(200, #"{"ready": 1}"#, json: [("ready", "true")]) == .failed("HTTP 200: 'ready' is '1', expected 'true'"))
        #expect(judge(200, #"{}"#, json: [("checks.db", "ok")]) == .failed("HTTP 200: the body has no 'checks.db' (expected 'ok')"))
        #expect(judge(200, "OK", json: [("status", "ok")]) == .failed("HTTP 200: the body is not JSON, so 'status' cannot be 'ok': OK"))
        #expect(judge(200, #"{"status": "degraded", "checks": {"redis": "down"}}"#, acceptDegraded: true, json: [("status", "healthy")])
            == .failed("HTTP 200, status 'degraded': 'status' is 'degraded', expected 'healthy'; not ok: redis (down)"))
    }
}

@Suite struct RunbookTemplates {
    @Test func partsAndReferences() throws {
        let template = try RunbookTemplate(parsing: "a ${X} $$b ${steps.restore-db.restored_point} ${Y:-d} $ c")
        #expect(template.parts == [.literal("a "), .variable("X", fallback: nil), .literal(" $b "),
                                   .variable("steps.restore-db.restored_point", fallback: nil), .literal(" "),
                                   .variable("Y", fallback: "d"), .literal(" $ c")])
        #expect(template.references.map(\.name) == ["X", "steps.restore-db.restored_point", "Y"])
        #expect(!template.isLiteral && RunbookTemplate(literal: "x").isLiteral)
        #expect(try template.resolve(["X": "1", "steps.restore-db.restored_point": "T"]) == "a 1 $b T d $ c")
    }

    @Test(arguments: [
        ("${", Interpolation.Failure.unterminated),
        ("${1X}", .invalidName("1X")),
        ("${steps.x}", .invalidName("steps.x")),
        ("${steps.x.restored}", .invalidName("steps.x.restored")),
        ("${steps.X.restored_point}", .invalidName("steps.X.restored_point")),
    ])
    func malformedReferencesAreRefused(text: String, failure: Interpolation.Failure) {
        #expect(throws: failure) { try RunbookTemplate(parsing: text) }
    }

    @Test func stepResultsRoundTripAsJSON() throws {
        let result = StepResult(id: "verify", kind: "health", started: Date(timeIntervalSince1970: 10), ended: Date(timeIntervalSince1970: 25),
                                outcome: .timedOut, detail: "1 of 2 checks failed", attempts: 2,
                                checks: [CheckResult(kind: "http", target: "http://x/health", passed: false, detail: "HTTP 503", attempts: 4)],
                                steps: [StepResult(id: "a", kind: "run", started: Date(timeIntervalSince1970: 10),
                                                   ended: Date(timeIntervalSince1970: 11), outcome: .skipped)])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(result)
        #expect(String(decoding: data, as: UTF8.self).contains(#""outcome":"timed-out""#))
        #expect(try JSONDecoder().decode(StepResult.self, from: data) == result)
        #expect(result.seconds == 15)
    }
}
