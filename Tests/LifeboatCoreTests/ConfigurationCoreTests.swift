import Testing
@testable import LifeboatCore

@Suite struct CronSchedules {
    @Test(arguments: ["0 2 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
    func expressionsThatNeverFireAreFound(text: String) throws {
        #expect(!(try CronExpression(parsing: text)).firesOnSomeDay)
    }

    @Test(arguments: ["0 2 29 2 *", "0 2 31 * *", "0 2 31 2 mon", "@daily"])
    func expressionsThatFireSometimesPass(text: String) throws {
        #expect(try CronExpression(parsing: text).firesOnSomeDay)
    }

    @Test(arguments: [
        ("*/15 * * * *", Int64(900)), ("0 * * * *", 3600), ("0 2 * * *", 86400), ("0 2,3 * * *", 3600),
        ("0 23 * * *", 86400), ("0 1,23 * * *", 7200), ("0 2 * * 1", 7 * 86400), ("0 2 1 * *", 28 * 86400),
        ("0 2 * * 1,3", 2 * 86400), ("@hourly", 3600),
    ] as [(String, Int64)])
    func theShortestIntervalIsFound(text: String, seconds: Int64) throws {
        #expect(try CronExpression(parsing: text).shortestInterval == seconds)
    }

    @Test func civilDatesMatchTheCalendar() {
        // 2000-02-29 was a Tuesday; 1969-12-26 a Friday.
        let leap = CivilDate(days: CivilDate.days(year: 2000, month: 2, day: 29))
        #expect(leap == CivilDate(days: 11016))
        #expect((leap.year, leap.month, leap.day, leap.weekday) == (2000, 2, 29, 2))
        #expect(CivilDate(days: -6).weekday == 5)
    }
}

@Suite struct DuplicateKeyScanning {
    @Test func everyRepeatedKeyIsFoundWithItsOwnLine() {
        let text = """
            policy: p
            source:
              files:
                path: /a
                path: /b
            schedule: { cron: "0 2 * * *" }
            retention:
              keep_last: 3
            schedule: { cron: "0 3 * * *" }
            """
        #expect(DuplicateKeys.find(in: text) == [
            DuplicateKeys.Duplicate(key: "path", line: 5, column: 5, firstLine: 4),
            DuplicateKeys.Duplicate(key: "schedule", line: 9, column: 1, firstLine: 6),
        ])
    }

    @Test func keysOfDifferentListItemsAreNotDuplicates() {
        let text = """
            steps:
              - run: [a]
                within: 5m
              - run: [b]
              - manual: |
                  run: not a key
                  run: still not a key
            """
        #expect(DuplicateKeys.find(in: text).isEmpty)
    }
}
