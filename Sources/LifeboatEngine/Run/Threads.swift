import Foundation
import LifeboatIO
import Synchronization

/// Results that jobs on several threads fill in, by index.
final class ResultSlots<Value: Sendable>: Sendable {
    private let slots: Mutex<[Value?]>

    init(count: Int) {
        slots = Mutex([Value?](repeating: nil, count: count))
    }

    func set(_ index: Int, _ value: Value) {
        slots.withLock { $0[index] = value }
    }

    var values: [Value?] { slots.withLock { $0 } }
}
