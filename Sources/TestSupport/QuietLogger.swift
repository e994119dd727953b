import Logging

/// A logger that writes nowhere, for engine code run inside the tests: the test output stays
/// the test runner's. (Tests that check log lines capture them instead.)
public let quietLogger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
