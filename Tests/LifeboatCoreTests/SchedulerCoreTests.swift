import Foundation
import Testing
@testable import LifeboatCore

private func utc(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    return formatter.date(from: text)!
}

private func cron(_ text: String) -> CronExpression {
    try! CronExpression(parsing: text)
}

private func zone(_ name: String) -> TimeZone { TimeZone(identifier: name)! }

@Suite struct CronFireTimes {
    @Test(arguments: [
        // Europe/Berlin, spring forward 2026-03-29 02:00 CET → 03:00 CEST (01:00Z): 02:30 does
        // not exist and runs once at the change; then the next day's 02:30 CEST.
        ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]),
        // Every quarter hour of 02:xx on that day: all skipped times, one run at the change.
        ("*/15 2 * * *", "Europe/Berlin", "2026-03-28T23:00:00Z", ["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"]),
        // 02:30 and 03:00 on the spring day map to the same instant: one run.
        ("0,30 2,3 29 3 *", "Europe/Berlin", "2026-03-28T23:00:00Z", ["2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z", "2027-03-29T00:00:00Z"]),
        // Fall back 2026-10-25 03:00 CEST → 02:00 CET (01:00Z): 02:30 occurs twice, runs at the first.
        ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]),
        // Hourly across the fall-back: local 02:00 runs once (CEST), then 03:00 CET.
        ("0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z", ["2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"]),
        // Hourly across the spring change: 01:00 CET, then 03:00 CEST.
        ("0 * * * *", "Europe/Berlin", "2026-03-28T23:30:00Z", ["2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"]),
        // America/New_York: spring forward 2026-03-08 02:00 EST → 03:00 EDT (07:00Z).
        ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
        // Fall back 2026-11-01 02:00 EDT → 01:00 EST (06:00Z): 01:30 runs at its first occurrence.
        ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]),
        ("*/20 1 1 11 *", "America/New_York", "2026-10-31T12:00:00Z", ["2026-11-01T05:00:00Z", "2026-11-01T05:20:00Z", "2026-11-01T05:40:00Z", "2027-11-01T05:00:00Z"]),
        // UTC, month ends: the 31st skips the months without one.
        ("0 0 31 * *", "UTC", "2026-04-01T00:00:00Z", ["2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"]),
        // February 29th: leap years only.
        ("0 12 29 2 *", "UTC", "2026-01-01T00:00:00Z", ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"]),
        // Last day of February and the 1st of March around a leap day.
        ("0 0 28,29 2 *", "UTC", "2028-02-27T00:00:00Z", ["2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"]),
        // Steps and lists, weekdays by name.
        ("*/20 9-10 * * mon-fri", "UTC", "2026-11-27T10:30:00Z", ["2026-11-27T10:40:00Z", "2026-11-30T09:00:00Z", "2026-11-30T09:20:00Z"]),
        ("5,35 */6 * * *", "UTC", "2026-01-01T05:50:00Z", ["2026-01-01T06:05:00Z", "2026-01-01T06:35:00Z", "2026-01-01T12:05:00Z"]),
        ("0 3 * jan,jul sun", "UTC", "2026-06-30T00:00:00Z", ["2026-07-05T03:00:00Z", "2026-07-12T03:00:00Z"]),
        // Both day fields restricted: either matches (the 13th, or a Friday).
        ("0 0 13 * 5", "UTC", "2026-02-01T00:00:00Z", ["2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z"]),
        // Shorthands.
        ("@monthly", "UTC", "2026-11-29T21:00:00Z", ["2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"]),
        ("@weekly", "UTC", "2026-11-29T21:00:00Z", ["2026-12-06T00:00:00Z", "2026-12-13T00:00:00Z"]),
        ("@daily", "Europe/Berlin", "2026-12-31T22:59:00Z", ["2026-12-31T23:00:00Z", "2027-01-01T23:00:00Z"]),
        ("@hourly", "UTC", "2026-12-31T23:00:00Z", ["2027-01-01T00:00:00Z"]),
        ("@yearly", "America/New_York", "2026-06-01T00:00:00Z", ["2027-01-01T05:00:00Z"]),
    ] as [(String, String, String, [String])])
    func firingsAreTheExpectedInstants(expression: String, timeZone: String, after: String, expected: [String]) {
        var cursor = utc(after)
        var fired: [Date] = []
        for _ in expected {
            guard let next = cron(expression).nextFire(after: cursor, in: zone(timeZone)) else { break }
            fired.append(next)
            cursor = next
        }
        #expect(fired == expected.map(utc))
    }

    @Test func aFiringIsStrictlyAfterTheGivenInstant() {
        #expect(cron("0 2 * * *").nextFire(after: utc("2026-01-01T02:00:00Z"), in: zone("UTC")) == utc("2026-01-02T02:00:00Z"))
        #expect(cron("0 2 * * *").nextFire(after: utc("2026-01-01T01:59:59Z"), in: zone("UTC")) == utc("2026-01-01T02:00:00Z"))
    }

    @Test func anExpressionThatNeverFiresHasNoNextFiring() {
        #expect(cron("0 0 31 2 *").nextFire(after: utc("2026-01-01T00:00:00Z"), in: zone("UTC")) == nil)
    }

    /// Every day of two years in Berlin and New York: each day fires exactly once for a daily
    /// job at any minute of 00:00-03:59, whatever the clocks do that day.
    @Test(arguments: ["Europe/Berlin", "America/New_York"])
    func aDailyJobRunsExactlyOnceEveryDayAcrossTheChanges(timeZone: String) {
        let tz = zone(timeZone)
        for time in ["0 1", "30 1", "0 2", "30 2", "59 2", "0 3"] {
            let fires = cron("\(time) * * *").fires(after: utc("2026-01-01T12:00:00Z"), through: utc("2027-12-31T12:00:00Z"), in: tz)
            #expect(fires.count == 729, "\(time) in \(timeZone)")
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = tz
            let days = Set(fires.map { calendar.dateComponents([.year, .month, .day], from: $0) })
            #expect(days.count == 729, "\(time) in \(timeZone): one firing a local day")
        }
    }
}

@Suite struct ScheduleJitterTests {
    @Test func jitterIsStableAndWithinBounds() {
        let jitter = ConfigDuration(seconds: 600)
        for name in ["db", "files", "orders-primary", "a", ""] {
            let offset = ScheduleJitter.offset(policy: name, jitter: jitter)
            #expect(offset == ScheduleJitter.offset(policy: name, jitter: jitter))
            #expect((0..<600).contains(offset))
        }
        #expect(ScheduleJitter.offset(policy: "db", jitter: nil) == 0)
        let offsets = Set((0..<50).map { ScheduleJitter.offset(policy: "policy-\($0)", jitter: jitter) })
        #expect(offsets.count > 30, "names spread over the window")
    }

    @Test func theNextRunIsTheFiringPlusTheJitter() {
        let schedule = Schedule(cron: cron("0 2 * * *"), timezone: "UTC", jitter: ConfigDuration(seconds: 1800))
        let offset = TimeInterval(ScheduleJitter.offset(policy: "db", jitter: schedule.jitter))
        let first = schedule.nextRun(after: utc("2026-01-01T00:00:00Z"), policy: "db")
        #expect(first == utc("2026-01-01T02:00:00Z").addingTimeInterval(offset))
        // From the jittered run itself, the next is a day later: the jitter does not wander.
        #expect(schedule.nextRun(after: first!, policy: "db") == utc("2026-01-02T02:00:00Z").addingTimeInterval(offset))
    }
}

@Suite struct SchedulerPlanTests {
    let daily = Schedule(cron: try! CronExpression(parsing: "0 2 * * *"))
    let minutely = Schedule(cron: try! CronExpression(parsing: "* * * * *"))

    @Test func aMissedRunWithinTheWindowRunsOnceAtStartUp() {
        var plan = SchedulerPlan(policies: [("db", daily)], lastScheduled: ["db": utc("2026-01-01T02:00:00Z")],
                                 settings: SchedulerSettings(), now: utc("2026-01-02T02:40:00Z"))
        #expect(plan.tick(now: utc("2026-01-02T02:40:00Z")) == [.start(policy: "db", scheduled: utc("2026-01-02T02:00:00Z"), catchUp: true)])
        plan.finished(policy: "db")
        #expect(plan.tick(now: utc("2026-01-02T02:50:00Z")) == [])
        #expect(plan.nextRun(of: "db") == utc("2026-01-03T02:00:00Z"))
    }

    @Test func aMissedRunOutsideTheWindowWaitsForTheNextFiring() {
        var plan = SchedulerPlan(policies: [("db", daily)], lastScheduled: [:], settings: SchedulerSettings(), now: utc("2026-01-02T03:30:00Z"))
        #expect(plan.tick(now: utc("2026-01-02T03:30:00Z")) == [])
        #expect(plan.nextRun(of: "db") == utc("2026-01-03T02:00:00Z"))
    }

    @Test func aRunTheHistoryRecordsIsNotCaughtUpAgain() {
        var plan = SchedulerPlan(policies: [("db", daily)], lastScheduled: ["db": utc("2026-01-02T02:00:00Z")],
                                 settings: SchedulerSettings(), now: utc("2026-01-02T02:30:00Z"))
        #expect(plan.tick(now: utc("2026-01-02T02:30:00Z")) == [])
    }

    @Test func manyMissedFiringsCatchUpOnce() {
        var plan = SchedulerPlan(policies: [("f", minutely)], lastScheduled: [:], settings: SchedulerSettings(), now: utc("2026-01-02T02:30:30Z"))
        #expect(plan.tick(now: utc("2026-01-02T02:30:30Z")) == [.start(policy: "f", scheduled: utc("2026-01-02T02:30:00Z"), catchUp: true)])
    }

    @Test func catchingUpCanBeTurnedOff() {
        var settings = SchedulerSettings()
        settings.catchUp = ConfigDuration(seconds: 0)
        var plan = SchedulerPlan(policies: [("f", minutely)], lastScheduled: [:], settings: settings, now: utc("2026-01-02T02:30:30Z"))
        #expect(plan.tick(now: utc("2026-01-02T02:30:30Z")) == [])
        #expect(plan.nextWake(now: utc("2026-01-02T02:30:30Z")) == utc("2026-01-02T02:31:00Z"))
    }

    @Test func aFiringWhileThePolicyRunsIsSkipped() {
        var plan = SchedulerPlan(policies: [("f", minutely)], lastScheduled: [:], settings: SchedulerSettings(catchUp: ConfigDuration(seconds: 0)),
                                 now: utc("2026-01-01T00:00:30Z"))
        #expect(plan.tick(now: utc("2026-01-01T00:01:00Z")) == [.start(policy: "f", scheduled: utc("2026-01-01T00:01:00Z"), catchUp: false)])
        #expect(plan.tick(now: utc("2026-01-01T00:02:00Z")) == [.skip(policy: "f", scheduled: utc("2026-01-01T00:02:00Z"))])
        #expect(plan.runningCount == 1)
        plan.finished(policy: "f")
        #expect(plan.tick(now: utc("2026-01-01T00:02:30Z")) == [])
        #expect(plan.tick(now: utc("2026-01-01T00:03:00Z")) == [.start(policy: "f", scheduled: utc("2026-01-01T00:03:00Z"), catchUp: false)])
    }

    @Test func theGlobalLimitHoldsAndWaitingRunsStartWhenASlotFrees() {
        let policies = ["a", "b", "c"].map { (name: $0, schedule: minutely) }
        var plan = SchedulerPlan(policies: policies, lastScheduled: [:], settings: SchedulerSettings(catchUp: ConfigDuration(seconds: 0), maxConcurrent: 2),
                                 now: utc("2026-01-01T00:00:30Z"))
        let first = plan.tick(now: utc("2026-01-01T00:01:00Z"))
        #expect(first == [.start(policy: "a", scheduled: utc("2026-01-01T00:01:00Z"), catchUp: false),
                          .start(policy: "b", scheduled: utc("2026-01-01T00:01:00Z"), catchUp: false)])
        // c waits for a slot: no wake-up for it (the end of a run wakes the loop).
        #expect(plan.nextWake(now: utc("2026-01-01T00:01:00Z")) == utc("2026-01-01T00:02:00Z"))
        plan.finished(policy: "a")
        #expect(plan.tick(now: utc("2026-01-01T00:01:20Z")) == [.start(policy: "c", scheduled: utc("2026-01-01T00:01:00Z"), catchUp: false)])
        #expect(plan.runningCount == 2)
    }

    @Test func aRunPastItsTimeoutIsCancelledOnce() {
        var plan = SchedulerPlan(policies: [("db", daily)], lastScheduled: [:],
                                 settings: SchedulerSettings(catchUp: ConfigDuration(seconds: 0), runTimeout: ConfigDuration(seconds: 600)),
                                 now: utc("2026-01-01T01:00:00Z"))
        #expect(plan.tick(now: utc("2026-01-01T02:00:00Z")).count == 1)
        #expect(plan.nextWake(now: utc("2026-01-01T02:00:00Z")) == utc("2026-01-01T02:10:00Z"))
        #expect(plan.tick(now: utc("2026-01-01T02:09:59Z")) == [])
        #expect(plan.tick(now: utc("2026-01-01T02:10:00Z")) == [.cancel(policy: "db", timedOut: true)])
        #expect(plan.tick(now: utc("2026-01-01T02:11:00Z")) == [])
        plan.finished(policy: "db")
        #expect(plan.runningCount == 0)
    }

    @Test func aStopStartsNothingAndCancelsAtTheDeadline() {
        let policies = ["a", "b"].map { (name: $0, schedule: minutely) }
        var plan = SchedulerPlan(policies: policies, lastScheduled: [:],
                                 settings: SchedulerSettings(catchUp: ConfigDuration(seconds: 0), maxConcurrent: 1, stopTimeout: ConfigDuration(seconds: 60)),
                                 now: utc("2026-01-01T00:00:30Z"))
        #expect(plan.tick(now: utc("2026-01-01T00:01:00Z")).count == 1)
        plan.stop(now: utc("2026-01-01T00:01:10Z"))
        #expect(!plan.isFinished)
        #expect(plan.tick(now: utc("2026-01-01T00:01:20Z")) == [])
        #expect(plan.nextWake(now: utc("2026-01-01T00:01:20Z")) == utc("2026-01-01T00:02:10Z"))
        #expect(plan.tick(now: utc("2026-01-01T00:02:10Z")) == [.cancel(policy: "a", timedOut: false)])
        plan.finished(policy: "a")
        #expect(plan.isFinished)
    }
}

@Suite struct RunHistoryParsing {
    @Test func aTornLastLineIsSkipped() throws {
        let record = RunRecord(policy: "db", job: "backup", scheduled: utc("2026-01-01T02:00:00Z"), started: utc("2026-01-01T02:00:01Z"),
                               ended: utc("2026-01-01T02:05:00Z"), outcome: .succeeded, backupID: "20260101T020001Z-ab", bytes: 42)
        let text = try record.line() + record.line() + #"{"policy":"db","job":"back"#
        let (records, unreadable) = RunRecord.parseHistory(Data(text.utf8))
        #expect(records == [record, record])
        #expect(unreadable == 1)
        #expect(try record.line().filter { $0 == "\n" }.count == 1)
        #expect(try record.line().contains(#""backupID":"20260101T020001Z-ab""#))
    }
}

@Suite struct SchedulerConfiguration {
    func parse(_ main: String) -> Configuration {
        ConfigurationParser.parse(directory: "/etc/lifeboat", main: ConfigFile(name: "lifeboat.yaml", text: main), policies: [], runbooks: [],
                                  sources: [], environment: [:])
    }

    @Test func theSchedulerKeysAreRead() {
        let configuration = parse("scheduler: { catch_up: 2h, max_concurrent: 3, run_timeout: 1h, stop_timeout: 30s, prune: { cron: '0 4 * * *', timezone: Europe/Berlin } }\n")
        #expect(configuration.problems.isEmpty)
        #expect(configuration.scheduler == SchedulerSettings(catchUp: ConfigDuration(seconds: 7200), maxConcurrent: 3,
                                                             runTimeout: ConfigDuration(seconds: 3600), stopTimeout: ConfigDuration(seconds: 30),
                                                             prune: Schedule(cron: try! CronExpression(parsing: "0 4 * * *"), timezone: "Europe/Berlin")))
        #expect(parse("scheduler: { prune: { cron: '0 4 * *' } }\n").problems.first?.error.description.contains("lifeboat.yaml:1:") == true)
        #expect(configuration.resolvedStateDirectory == "/etc/lifeboat/.lifeboat/state")
        #expect(parse("state_dir: /var/lib/lifeboat\n").resolvedStateDirectory == "/var/lib/lifeboat")
    }

    @Test func theVerifyScheduleIsReadAndRotatesItsReadDataPart() throws {
        let configuration = parse("scheduler:\n  verify: { cron: '0 5 * * *', timezone: Europe/Berlin, read_data_parts: 7 }\n")
        #expect(configuration.problems.isEmpty)
        let verify = try #require(configuration.scheduler.verify)
        #expect(verify.schedule.cron.description == "0 5 * * *")
        #expect(verify.schedule.timezone == "Europe/Berlin")
        #expect(verify.readDataParts == 7)
        // The part rotates with the verify runs before it: 7 runs read every part once.
        #expect((0..<8).map { verify.subset(afterRuns: $0)!.part } == [1, 2, 3, 4, 5, 6, 7, 1])
        #expect(verify.subset(afterRuns: 3)!.of == 7)
        // Without read_data_parts a run reads no data.
        #expect(parse("scheduler: { verify: { cron: '0 5 * * *' } }\n").scheduler.verify?.subset(afterRuns: 4) == nil)
    }

    @Test func aBadVerifyScheduleIsReportedWhereItIs() {
        let messages = parse("scheduler:\n  verify:\n    cron: '0 5 * *'\n    read_data_parts: 0\n    read_data: yes\n").problems.map(\.error.description)
        #expect(messages.count == 3, "\(messages)")
        #expect(messages.contains { $0.contains("lifeboat.yaml:3:") && $0.contains("cron") })
        #expect(messages.contains { $0.contains("lifeboat.yaml:4:") && $0.contains("read_data_parts") })
        #expect(messages.contains { $0.contains("lifeboat.yaml:5:") && $0.contains("read_data") })
    }

    @Test func badValuesAreReportedWhereTheyAre() {
        let configuration = parse("scheduler:\n  max_concurrent: 0\n  run_timeout: soon\n  retries: 3\n")
        let messages = configuration.problems.map { $0.error.description }
        #expect(messages.count == 3)
        #expect(messages.contains { $0.contains("lifeboat.yaml:2:") && $0.contains("max_concurrent") })
        #expect(messages.contains { $0.contains("lifeboat.yaml:3:") && $0.contains("soon") })
        #expect(messages.contains { $0.contains("lifeboat.yaml:4:") && $0.contains("retries") })
    }
}

/// Lifeboat's firings against an independent implementation: Python's croniter 7.0.0, whose
/// table `Fixtures/cron/generate.py` wrote (16 expressions × 4 time zones × 6 starts around
/// daylight-saving changes, 12 firings each). croniter fires a repeated local time (clocks set
/// back) at both occurrences, Lifeboat at the first only: those second occurrences are dropped
/// from croniter's list before comparing; everything else must be identical.
@Suite struct CronAgainstCroniter {
    struct Case: Decodable {
        var expression: String
        var timezone: String
        var after: String
        var fires: [String]
    }

    static func cases() throws -> [Case] {
        let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        return try JSONDecoder().decode([Case].self, from: Data(contentsOf: directory.appendingPathComponent("cron/croniter.json")))
    }

    /// Whether `instant` is the second occurrence of its local time (an earlier instant, before
    /// the clocks went back, had the same local time).
    static func isSecondOccurrence(_ instant: Date, in timeZone: TimeZone) -> Bool {
        let offset = timeZone.secondsFromGMT(for: instant)
        let earlier = timeZone.secondsFromGMT(for: instant.addingTimeInterval(-7200))
        let shift = TimeInterval(earlier - offset)
        guard shift > 0 else { return false }
        let candidate = instant.addingTimeInterval(-shift)
        return timeZone.secondsFromGMT(for: candidate) == earlier
    }

    @Test func everyFiringMatchesCroniterButRepeatedTimesRunOnce() throws {
        let cases = try Self.cases()
        #expect(cases.count == 384)
        var compared = 0
        var dropped = 0
        for item in cases {
            let tz = zone(item.timezone)
            let expected = item.fires.map(utc).filter { fire in
                let second = Self.isSecondOccurrence(fire, in: tz)
                if second { dropped += 1 }
                return !second
            }
            var cursor = utc(item.after)
            var ours: [Date] = []
            for _ in expected {
                guard let next = cron(item.expression).nextFire(after: cursor, in: tz) else { break }
                ours.append(next)
                cursor = next
            }
            #expect(ours == expected, "\(item.expression) in \(item.timezone) after \(item.after)")
            compared += expected.count
        }
        #expect(compared > 4000)
        #expect(dropped > 0, "the table has repeated local times")
    }
}
