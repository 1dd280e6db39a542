import Foundation

/// Run ids and snapshot versions: unique, and sorting as plain strings by creation time.
///
/// Form: `20261121T201408123Z-` + 12 random hex digits, e.g. `20261121T201408123Z-4f1c0a9be203`.
/// The timestamp is UTC with milliseconds. Within one process ids are strictly increasing even
/// when the clock stands still or steps back.
public enum Identifiers {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var lastMillis: Int64 = 0

    public static func make(now: Date = Date()) -> String {
        var millis = Int64((now.timeIntervalSince1970 * 1000).rounded(.down))
        lock.lock()
        if millis <= lastMillis { millis = lastMillis + 1 }
        lastMillis = millis
        lock.unlock()
        var random = SystemRandomNumberGenerator()
        let suffix = (0..<6).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &random)) }.joined()
        return "\(timestamp(millis: millis))-\(suffix)"
    }

    /// A new id that sorts after `previous` even when this host's clock is behind the host that
    /// made `previous` (the pointer only moves forward, SPEC invariant 11).
    public static func make(after previous: String?, now: Date = Date()) -> String {
        let id = make(now: now)
        guard let previous, let prevDate = date(of: previous), id <= previous else { return id }
        return make(now: prevDate.addingTimeInterval(0.001))
    }

    /// `yyyyMMdd'T'HHmmssSSS'Z'` for a number of milliseconds since 1970.
    public static func timestamp(millis: Int64) -> String {
        let seconds = millis / 1000
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(
            format: "%04d%02d%02dT%02d%02d%02d%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec),
            Int(millis % 1000))
    }

    /// The creation time encoded in an id, or nil when it is not of this form.
    public static func date(of id: String) -> Date? {
        let u = Array(id.utf8)
        guard u.count >= 19, u[8] == UInt8(ascii: "T"), u[18] == UInt8(ascii: "Z") else { return nil }
        func num(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard u[i] >= 0x30 && u[i] <= 0x39 else { return nil }
                v = v * 10 + Int(u[i] - 0x30)
            }
            return v
        }
        guard let y = num(0..<4), let mo = num(4..<6), let d = num(6..<8), let h = num(9..<11),
            let mi = num(11..<13), let s = num(13..<15), let ms = num(15..<18)
        else { return nil }
        var c = DateComponents()
        c.timeZone = TimeZone(identifier: "UTC")
        (c.year, c.month, c.day, c.hour, c.minute, c.second) = (y, mo, d, h, mi, s)
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        guard let date = cal.date(from: c) else { return nil }
        return date.addingTimeInterval(Double(ms) / 1000)
    }

    /// Validates an id taken from outside (a key, a record): safe as one key segment.
    public static func isValid(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 128
            && id.utf8.allSatisfy {
                ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39)
                    || $0 == 0x2d || $0 == 0x5f || $0 == 0x2e
            } && id != "." && id != ".."
    }
}
