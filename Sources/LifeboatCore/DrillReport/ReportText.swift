/// Text helpers the report renderers share: markup escaping and fixed-point numbers that do
/// not depend on the locale.
enum ReportText {
    /// Escapes text for XML or HTML, in element content and in quoted attributes alike. Control
    /// characters that XML 1.0 forbids even as references become U+FFFD; in attributes, line
    /// breaks and tabs are kept as references (an attribute's raw ones would be normalised).
    /// Not `XMLNode.escape`: that one writes S3 request bodies, where a control character in a
    /// key must survive as a reference and `&apos;` is fine; a report is read by HTML too.
    static func escape(_ text: String, attribute: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\n", "\r", "\t":
                if attribute { out += "&#\(scalar.value);" } else { out.unicodeScalars.append(scalar) }
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// `value` with `places` decimals (`1.500`), rounded half away from zero.
    static func decimal(_ value: Double, places: Int) -> String {
        guard value.isFinite else { return "0" }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let scaled = Int64((abs(value) * scale).rounded())
        let sign = value < 0 && scaled != 0 ? "-" : ""
        let whole = scaled / Int64(scale)
        guard places > 0 else { return "\(sign)\(whole)" }
        var fraction = String(scaled % Int64(scale))
        while fraction.count < places { fraction = "0" + fraction }
        return "\(sign)\(whole).\(fraction)"
    }
}
