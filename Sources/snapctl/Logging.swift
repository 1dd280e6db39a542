import Foundation
import Logging

/// Log lines on stderr: readable on a terminal, JSON lines otherwise (containers, log shippers).
/// Metadata carries run ids, versions, counts, bytes and durations; never secrets.
struct StrataLogHandler: LogHandler {
    enum Format: String { case human, json }

    let label: String
    let format: Format
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    private static let lock = NSLock()

    init(label: String, format: Format, level: Logger.Level) {
        self.label = label
        self.format = format
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
        file: String, function: String, line: UInt
    ) {
        var all = metadata
        if let explicit { all.merge(explicit) { $1 } }
        let now = Date()
        let line: String
        switch format {
        case .human:
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            line =
                "\(Self.timeOfDay(now)) \(level.rawValue.uppercased()) \(message)\(fields.isEmpty ? "" : " " + fields)\n"
        case .json:
            var obj: [String: Any] = [
                "ts": Self.iso(now), "level": level.rawValue, "msg": "\(message)",
                "logger": label,
            ]
            for (k, v) in all { obj[k] = Self.json(v) }
            let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self) + "\n"
        }
        Self.lock.lock()
        FileHandle.standardError.write(Data(line.utf8))
        Self.lock.unlock()
    }

    private static func json(_ v: Logger.Metadata.Value) -> Any {
        switch v {
        case .string(let s): return Int(s).map { $0 as Any } ?? s
        case .stringConvertible(let c): return "\(c)"
        case .array(let a): return a.map(json)
        case .dictionary(let d): return d.mapValues(json)
        }
    }

    private static func iso(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: d)
    }

    private static func timeOfDay(_ d: Date) -> String {
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss.SSS"
        return f.string(from: d)
    }

    /// Installs the handler once per process: `--log-format`/`STRATA_LOG_FORMAT` (human|json,
    /// default human on a terminal), `--log-level`/`STRATA_LOG_LEVEL` (default info).
    static func bootstrap(format: String?, level: String?, environment: [String: String]) {
        let fmt =
            Format(rawValue: (format ?? environment["STRATA_LOG_FORMAT"] ?? "").lowercased())
            ?? (isatty(STDERR_FILENO) != 0 ? .human : .json)
        let lvl = Logger.Level(rawValue: (level ?? environment["STRATA_LOG_LEVEL"] ?? "info").lowercased()) ?? .info
        LoggingSystem.bootstrap { StrataLogHandler(label: $0, format: fmt, level: lvl) }
    }
}
