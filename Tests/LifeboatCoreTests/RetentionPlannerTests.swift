import Foundation
import LifeboatCore
import Testing

/// The keep rules, table by table, with "now" and the time zone given: several backups a day,
/// time zones, daylight-saving days, ISO weeks and year boundaries, equal times, gaps.
@Suite struct RetentionPlanning {
    static let utc = TimeZone(identifier: "UTC")!
    static let berlin = TimeZone(identifier: "Europe/Berlin")!
    static let newYork = TimeZone(identifier: "America/New_York")!

    /// `2026-11-29T02:00:00Z` (or with an offset) as a date.
    static func time(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        guard let date = formatter.date(from: text) else { fatalError("bad test time \(text)") }
        return date
    }

    /// A backup started at `text`, its id made from the UTC time (as backup ids are), with
    /// `suffix` to tell apart backups of the same second.
    static func backup(_ text: String, suffix: String = "a", consistent: String? = nil) -> RetentionCandidate {
        let date = time(text)
        return RetentionCandidate(id: BackupID.format(date) + "-" + suffix, time: date,
                                  consistentAt: consistent.map(time))
    }

    /// The ids kept, oldest first.
    func kept(_ backups: [RetentionCandidate], _ rules: Retention, zone: TimeZone = utc, now: String = "2030-01-01T00:00:00Z") -> [String] {
        RetentionPlanner.plan(backups, rules: rules, timeZone: zone, now: Self.time(now)).filter(\.keep).map(\.id)
    }

    func decision(_ id: String, in decisions: [RetentionDecision]) throws -> RetentionDecision {
        try #require(decisions.first { $0.id == id })
    }

    @Test func noBackupsNoDecisions() {
        #expect(RetentionPlanner.plan([], rules: Retention(keepLast: 3), timeZone: Self.utc, now: Date()).isEmpty)
    }

    @Test func aPolicyWithoutRulesKeepsEverythingAndSaysSo() {
        let backups = (1...4).map { Self.backup("2026-11-0\($0)T02:00:00Z") }
        let decisions = RetentionPlanner.plan(backups, rules: Retention(), timeZone: Self.utc, now: Self.time("2026-11-30T00:00:00Z"))
        #expect(decisions.map(\.id) == backups.map(\.id), "oldest first")
        #expect(decisions.allSatisfy { $0.keep && $0.reasons.first?.rule == "no_rules" })
        #expect(decisions.last?.reasons.map(\.rule) == ["no_rules", "newest"])
    }

    @Test func keepLastKeepsTheNewestAndNamesTheirRank() throws {
        let backups = (1...5).map { Self.backup("2026-11-0\($0)T02:00:00Z") }
        let decisions = RetentionPlanner.plan(backups, rules: Retention(keepLast: 3), timeZone: Self.utc, now: Self.time("2026-11-30T00:00:00Z"))
        #expect(decisions.map(\.keep) == [false, false, true, true, true])
        #expect(try decision(backups[4].id, in: decisions).reasons.map(\.description) == [
            "keep_last (number 1 of the 3 newest)", "newest (the newest committed backup is never deleted)",
        ])
        #expect(try decision(backups[2].id, in: decisions).reasons.map(\.detail) == ["number 3 of the 3 newest"])
        #expect(try decision(backups[0].id, in: decisions).reasons == [RetentionReason(rule: "expired", detail: "no retention rule keeps it")])
    }

    /// Several backups a day: each day's newest is its daily; with counts to spare after the
    /// last day, the oldest backup is kept too (restic 0.17).
    @Test func keepDailyKeepsEachDaysNewestAndTheOldestWhileThereIsRoom() throws {
        let backups = [
            Self.backup("2026-11-01T02:00:00Z"), Self.backup("2026-11-01T14:00:00Z"),
            Self.backup("2026-11-02T02:00:00Z"), Self.backup("2026-11-02T14:00:00Z"), Self.backup("2026-11-02T20:00:00Z"),
            Self.backup("2026-11-04T02:00:00Z"),  // a gap: no backup on the 3rd
        ]
        #expect(kept(backups, Retention(keepDaily: 2)) == [backups[4].id, backups[5].id])
        #expect(kept(backups, Retention(keepDaily: 3)) == [backups[1].id, backups[4].id, backups[5].id])
        let decisions = RetentionPlanner.plan(backups, rules: Retention(keepDaily: 7), timeZone: Self.utc, now: Self.time("2026-11-30T00:00:00Z"))
        #expect(decisions.filter(\.keep).map(\.id) == [backups[0].id, backups[1].id, backups[4].id, backups[5].id])
        #expect(try decision(backups[4].id, in: decisions).reasons.map(\.detail) == ["newest of day 2026-11-02 (2 of 7)"])
        #expect(try decision(backups[0].id, in: decisions).reasons.map(\.detail) == ["the oldest backup, kept because keep_daily has room left (4 of 7)"])
    }

    @Test func daysAreThePolicysTimeZones() {
        // 23:30 UTC is already the next day in Berlin, still the same day in New York.
        let backups = [Self.backup("2026-11-01T12:00:00Z"), Self.backup("2026-11-01T23:30:00Z"), Self.backup("2026-11-02T12:00:00Z")]
        #expect(kept(backups, Retention(keepDaily: 2), zone: Self.utc) == [backups[1].id, backups[2].id])
        // Berlin: the 23:30 backup belongs to 2 November with the noon one, which is newer.
        #expect(kept(backups, Retention(keepDaily: 2), zone: Self.berlin) == [backups[0].id, backups[2].id])
        #expect(kept(backups, Retention(keepDaily: 2), zone: Self.newYork) == [backups[1].id, backups[2].id])
    }

    /// 25 October 2026: Berlin's clocks go back from 03:00 CEST to 02:00 CET. The day has 25
    /// hours and is one day; the hour 02:00–03:00 happens twice and counts as two hours.
    @Test func theNightClocksGoBackIsOneDayAndItsRepeatedHourTwoHours() throws {
        let backups = [
            Self.backup("2026-10-24T22:30:00Z"),  // 00:30 CEST on the 25th
            Self.backup("2026-10-25T00:30:00Z"),  // 02:30 CEST
            Self.backup("2026-10-25T01:30:00Z"),  // 02:30 CET, the second time
            Self.backup("2026-10-25T22:30:00Z"),  // 23:30 CET, still the 25th
        ]
        #expect(kept(backups, Retention(keepDaily: 1), zone: Self.berlin) == [backups[3].id])
        let decisions = RetentionPlanner.plan(backups, rules: Retention(keepHourly: 3), timeZone: Self.berlin, now: Self.time("2026-11-01T00:00:00Z"))
        #expect(decisions.filter(\.keep).map(\.id) == [backups[1].id, backups[2].id, backups[3].id])
        #expect(try decision(backups[2].id, in: decisions).reasons.map(\.detail) == ["newest of hour 2026-10-25 02:00+01:00 (2 of 3)"])
        #expect(try decision(backups[1].id, in: decisions).reasons.map(\.detail) == ["newest of hour 2026-10-25 02:00+02:00 (3 of 3)"])
    }

    /// 29 March 2026: Berlin's clocks jump from 02:00 CET to 03:00 CEST; the day has 23 hours.
    @Test func theNightClocksGoForwardIsOneDay() {
        let backups = [
            Self.backup("2026-03-28T23:30:00Z"),  // 00:30 CET on the 29th
            Self.backup("2026-03-29T01:30:00Z"),  // 03:30 CEST
            Self.backup("2026-03-29T21:30:00Z"),  // 23:30 CEST, still the 29th
            Self.backup("2026-03-29T22:30:00Z"),  // 00:30 CEST on the 30th
        ]
        #expect(kept(backups, Retention(keepDaily: 2), zone: Self.berlin) == [backups[2].id, backups[3].id])
        #expect(kept(backups, Retention(keepHourly: 4), zone: Self.berlin) == backups.map(\.id))
    }

    /// `keep_within 1d` is the same clock time one calendar day before the newest backup:
    /// across the spring change that is 23 hours, not 24.
    @Test func keepWithinCountsCalendarDaysInTheTimeZone() throws {
        let newest = Self.backup("2026-03-29T10:00:00Z")  // 12:00 CEST
        let inside = Self.backup("2026-03-28T11:30:00Z")  // 12:30 CET the day before: 22.5 hours earlier
        let outside = Self.backup("2026-03-28T10:30:00Z")  // 11:30 CET: 23.5 hours earlier, before 12:00 local
        let backups = [outside, inside, newest]
        #expect(kept(backups, Retention(keepWithin: ConfigDuration(seconds: 86_400)), zone: Self.berlin) == [inside.id, newest.id])
        // In UTC a day is 24 hours, and both are within it.
        #expect(kept(backups, Retention(keepWithin: ConfigDuration(seconds: 86_400)), zone: Self.utc) == backups.map(\.id))
        // Hours are exact: 1d12h is one calendar day, then 12 hours.
        #expect(kept(backups, Retention(keepWithin: ConfigDuration(parsing: "1d12h")!), zone: Self.berlin) == backups.map(\.id))
        let decisions = RetentionPlanner.plan(backups, rules: Retention(keepWithin: ConfigDuration(seconds: 86_400)), timeZone: Self.berlin,
                                              now: Self.time("2026-04-10T00:00:00Z"))
        #expect(try decision(inside.id, in: decisions).reasons.map(\.detail) == ["started within 1d of the newest backup (after 2026-03-28 12:00:00+01:00)"])
    }

    /// As restic: the span is measured from the newest backup, not from now, so a policy whose
    /// backups stopped does not lose its history as time passes; a backup dated in the future
    /// (a clock running ahead) does not move it.
    @Test func keepWithinIsMeasuredFromTheNewestBackupThatIsNotInTheFuture() {
        let backups = [Self.backup("2026-01-01T00:00:00Z"), Self.backup("2026-01-05T00:00:00Z"), Self.backup("2026-01-10T00:00:00Z"),
                       Self.backup("2027-06-01T00:00:00Z")]
        let rules = Retention(keepWithin: ConfigDuration(parsing: "7d")!)
        // A year later, the newest (not future) backup is 10 January: 5 January is within 7 days.
        #expect(kept(backups, rules, now: "2027-01-10T00:00:00Z") == [backups[1].id, backups[2].id, backups[3].id])
    }

    /// ISO 8601 weeks: Monday to Sunday; 31 December 2020 and 3 January 2021 are both in week
    /// 53 of 2020, 30 December 2019 in week 1 of 2020.
    @Test func weeksAreISOWeeksAcrossYearBoundaries() throws {
        let backups = [
            Self.backup("2019-12-28T12:00:00Z"),  // Saturday, 2019-W52
            Self.backup("2019-12-30T12:00:00Z"),  // Monday, 2020-W01
            Self.backup("2020-12-31T12:00:00Z"),  // Thursday, 2020-W53
            Self.backup("2021-01-03T12:00:00Z"),  // Sunday, 2020-W53
            Self.backup("2021-01-04T12:00:00Z"),  // Monday, 2021-W01
        ]
        let decisions = RetentionPlanner.plan(backups, rules: Retention(keepWeekly: 3), timeZone: Self.utc, now: Self.time("2021-02-01T00:00:00Z"))
        #expect(decisions.filter(\.keep).map(\.id) == [backups[1].id, backups[3].id, backups[4].id])
        #expect(try decision(backups[4].id, in: decisions).reasons.first?.detail == "newest of week 2021-W01 (1 of 3)")
        #expect(try decision(backups[3].id, in: decisions).reasons.first?.detail == "newest of week 2020-W53 (2 of 3)")
        #expect(try decision(backups[1].id, in: decisions).reasons.first?.detail == "newest of week 2020-W01 (3 of 3)")
    }

    @Test func monthsAndYearsTurnInThePolicysTimeZone() {
        let backups = [Self.backup("2025-06-01T12:00:00Z"), Self.backup("2025-12-31T23:00:00Z"), Self.backup("2026-01-01T00:30:00Z")]
        // In UTC the newest is 2026's, the one before 2025's, and the oldest is kept for the room left.
        #expect(kept(backups, Retention(keepYearly: 5), zone: Self.utc) == backups.map(\.id))
        // In New York all three are in 2025: its newest, and the oldest for the room left.
        #expect(kept(backups, Retention(keepYearly: 5), zone: Self.newYork) == [backups[0].id, backups[2].id])
        #expect(kept(backups, Retention(keepMonthly: 2), zone: Self.utc) == [backups[1].id, backups[2].id])
        #expect(kept(backups, Retention(keepMonthly: 1), zone: Self.newYork) == [backups[2].id])
    }

    @Test func equalTimesAreOrderedByIdAndCountOnce() {
        let a = Self.backup("2026-11-01T02:00:00Z", suffix: "aaaaaa")
        let b = Self.backup("2026-11-01T02:00:00Z", suffix: "bbbbbb")
        #expect(kept([a, b], Retention(keepLast: 1)) == [b.id])
        #expect(kept([b, a], Retention(keepDaily: 1)) == [b.id])
        // Room left after the only day: the oldest (by id) is kept too.
        #expect(kept([a, b], Retention(keepDaily: 2)) == [a.id, b.id])
        #expect(kept([a, b], Retention(keepLast: 2)) == [a.id, b.id])
    }

    @Test func rulesAddUpAndEveryRuleThatKeepsABackupIsNamed() throws {
        let backups = [
            Self.backup("2026-10-15T02:00:00Z"), Self.backup("2026-11-01T02:00:00Z"), Self.backup("2026-11-20T02:00:00Z"),
            Self.backup("2026-11-28T02:00:00Z"), Self.backup("2026-11-29T02:00:00Z"),
        ]
        let rules = Retention(keepWithin: ConfigDuration(parsing: "2d")!, keepLast: 1, keepMonthly: 2)
        let decisions = RetentionPlanner.plan(backups, rules: rules, timeZone: Self.utc, now: Self.time("2026-11-29T12:00:00Z"))
        #expect(decisions.filter(\.keep).map(\.id) == [backups[0].id, backups[3].id, backups[4].id])
        #expect(try decision(backups[4].id, in: decisions).reasons.map(\.rule) == ["keep_within", "keep_last", "keep_monthly", "newest"])
        #expect(try decision(backups[3].id, in: decisions).reasons.map(\.rule) == ["keep_within"])
        #expect(try decision(backups[0].id, in: decisions).reasons.map(\.rule) == ["keep_monthly"])
        #expect(rules.rules == ["keep_last: 1", "keep_monthly: 2", "keep_within: 2d"])
    }

    @Test func keepWithinDailyKeepsOneADayInsideTheSpan() {
        let backups = [
            Self.backup("2026-11-25T02:00:00Z"), Self.backup("2026-11-27T02:00:00Z"), Self.backup("2026-11-27T14:00:00Z"),
            Self.backup("2026-11-28T02:00:00Z"), Self.backup("2026-11-28T14:00:00Z"),
        ]
        #expect(kept(backups, Retention(keepWithinDaily: ConfigDuration(parsing: "2d")!)) == [backups[2].id, backups[4].id])
    }

    /// `recovery_window: 30d` on 30 November: the window starts on 31 October. The newest
    /// backup consistent by then is where restores of the window's first moments start; every
    /// backup consistent later is inside the window; older ones go.
    @Test func theRecoveryWindowKeepsTheBackupBeforeItAndEverythingAfter() throws {
        let backups = [
            Self.backup("2026-10-01T02:00:00Z"), Self.backup("2026-10-15T02:00:00Z"),
            Self.backup("2026-10-30T23:00:00Z", consistent: "2026-10-30T23:40:00Z"),
            // Started before the window, consistent only inside it: not the window's start.
            Self.backup("2026-10-31T23:30:00Z", consistent: "2026-11-01T00:10:00Z"),
            Self.backup("2026-11-29T02:00:00Z"),
        ]
        let rules = Retention(recoveryWindow: ConfigDuration(parsing: "30d")!)
        let decisions = RetentionPlanner.plan(backups, rules: rules, timeZone: Self.utc, now: Self.time("2026-11-30T23:50:00Z"))
        #expect(decisions.filter(\.keep).map(\.id) == [backups[2].id, backups[3].id, backups[4].id])
        #expect(try decision(backups[2].id, in: decisions).reasons.map(\.description) == [
            "recovery_window (the newest backup consistent before the 30d window starts (2026-10-31 23:50:00+00:00): restores of its first moments start from it)",
        ])
        #expect(try decision(backups[3].id, in: decisions).reasons.map(\.detail) == ["consistent at 2026-11-01 00:10:00+00:00, inside the 30d window"])
        // A young policy: nothing is older than the window, so everything stays.
        #expect(kept(Array(backups[3...]), rules, now: "2026-11-30T00:00:00Z") == [backups[3].id, backups[4].id])
        // A policy whose backups stopped long ago keeps at least the newest one.
        let stale = RetentionPlanner.plan(backups, rules: rules, timeZone: Self.utc, now: Self.time("2028-01-01T00:00:00Z"))
        #expect(stale.filter(\.keep).map(\.id) == [backups[4].id])
        #expect(stale.last?.reasons.map(\.rule) == ["recovery_window", "newest"])
    }

    /// The window's start is calendar days in the policy's zone: 1d before 12:00 CEST on the
    /// day clocks went forward is 12:00 CET the day before, 23 hours earlier.
    @Test func theRecoveryWindowStartsAtTheSameClockTimeInThePolicysZone() {
        let before = Self.backup("2026-03-28T10:30:00Z")  // 11:30 CET
        let after = Self.backup("2026-03-28T11:30:00Z")  // 12:30 CET
        let newest = Self.backup("2026-03-29T09:00:00Z")
        let rules = Retention(recoveryWindow: ConfigDuration(seconds: 86_400))
        let now = "2026-03-29T10:00:00Z"  // 12:00 CEST
        #expect(kept([before, after, newest], rules, zone: Self.berlin, now: now) == [before.id, after.id, newest.id])
        // In UTC the window starts at 10:00 UTC the day before: all three are inside it.
        #expect(kept([before, after, newest], rules, zone: Self.utc, now: now) == [before.id, after.id, newest.id])
        // With an older backup: in Berlin `before` starts the window and `older` goes; in UTC
        // `older` starts it.
        let older = Self.backup("2026-03-28T09:00:00Z")
        #expect(kept([older, before, after, newest], rules, zone: Self.berlin, now: now) == [before.id, after.id, newest.id])
        #expect(kept([older, before, after, newest], rules, zone: Self.utc, now: now) == [older.id, before.id, after.id, newest.id])
    }

    /// Every rule, applied to two years of backups every six hours, never drops the newest.
    @Test func theNewestIsAlwaysKept() {
        var backups: [RetentionCandidate] = []
        var date = Self.time("2025-01-01T00:00:00Z")
        while date < Self.time("2027-01-01T00:00:00Z") {
            backups.append(RetentionCandidate(id: BackupID.make(startedAt: date) { 0 }, time: date))
            date.addTimeInterval(6 * 3600)
        }
        let newest = backups.last!.id
        for rules in [Retention(keepLast: 1), Retention(keepHourly: 1), Retention(keepDaily: 1), Retention(keepWeekly: 1),
                      Retention(keepMonthly: 1), Retention(keepYearly: 1), Retention(keepWithin: ConfigDuration(seconds: 1)),
                      Retention(recoveryWindow: ConfigDuration(seconds: 1)), Retention(keepWithinYearly: ConfigDuration(seconds: 1))] {
            let result = kept(backups, rules, zone: Self.berlin, now: "2027-06-01T00:00:00Z")
            #expect(result.contains(newest), "\(rules.rules)")
        }
        // Daily for a week, weekly for a month, monthly for a year: counted the way they read.
        let counted = kept(backups, Retention(keepDaily: 7, keepWeekly: 4, keepMonthly: 12), zone: Self.utc, now: "2027-01-01T00:00:00Z")
        // 7 days (25–31 December); weeks 2026-W53 and W52 are among them, W51 and W50 add two;
        // December is among them, January to November add eleven.
        #expect(counted.count == 7 + 2 + 11, "\(counted)")
    }
}

@Suite struct WALRetentionRules {
    let size = WALSegment.defaultSize

    func segment(_ timeline: UInt32, _ number: UInt64) -> WALSegment { WALSegment(timeline: timeline, number: number, segmentSize: size) }

    @Test func everythingBeforeTheOldestKeptBackupsStartGoesOnEveryTimeline() {
        func record(_ timeline: UInt32, start: UInt64) -> PhysicalBackupRecord {
            PhysicalBackupRecord(timeline: timeline, startLSN: LSN(start * size + 0x28), stopLSN: LSN((start + 1) * size + 0x100),
                                 startTime: Date(), stopTime: Date(), segmentSize: size, checkpoint: "fast", tablespaces: [])
        }
        #expect(WALRetention.firstNeededSegment(of: [], segmentSize: size) == nil)
        let first = WALRetention.firstNeededSegment(of: [record(2, start: 9), record(1, start: 5), record(2, start: 12)], segmentSize: size)
        #expect(first == 5)
        let expired: [WALFileName] = [.segment(segment(1, 4)), .partial(segment(1, 4)), .backupHistory(segment(1, 2), offset: 0x28),
                                      .segment(segment(2, 4))]
        let kept: [WALFileName] = [.segment(segment(1, 5)), .segment(segment(1, 6)), .partial(segment(1, 5)), .backupHistory(segment(1, 5), offset: 0x28),
                                   .segment(segment(2, 7)), .history(timeline: 2), .history(timeline: 3)]
        for file in expired { #expect(WALRetention.isExpired(file, firstNeeded: 5), "\(file)") }
        for file in kept { #expect(!WALRetention.isExpired(file, firstNeeded: 5), "\(file)") }
    }
}
