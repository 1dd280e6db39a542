import Foundation
import StrataCore

/// Progress of long transfers on a terminal: bytes, rate and ETA on one line of stderr,
/// refreshed four times a second. Never in --json mode or when stderr is not a terminal (logs
/// and pipes stay clean). `STRATA_PROGRESS=0` turns it off.
enum Progress {
    /// Counts every object byte the opened store moves.
    static let meter = TransferMeter()

    static func enabled(json: Bool) -> Bool {
        !json && isatty(STDERR_FILENO) != 0 && ProcessInfo.processInfo.environment["STRATA_PROGRESS"] != "0"
    }

    /// Runs `body`, showing progress towards `total` bytes (nil when unknown) when enabled.
    static func run<T>(_ label: String, total: Int64?, json: Bool = false, _ body: () throws -> T) rethrows -> T {
        guard enabled(json: json) else { return try body() }
        let start = meter.total
        let began = Date()
        let stop = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            // Shown at once, refreshed, shown in its final state, then the line is cleared.
            repeat {
                render(label, bytes: meter.total - start, total: total, seconds: Date().timeIntervalSince(began))
            } while stop.wait(timeout: .now() + 0.25) == .timedOut
            render(label, bytes: meter.total - start, total: total, seconds: Date().timeIntervalSince(began))
            FileHandle.standardError.write(Data("\r\u{1b}[K".utf8))
            done.signal()
        }
        defer {
            stop.signal()
            done.wait()
        }
        return try body()
    }

    static func render(_ label: String, bytes: Int64, total: Int64?, seconds: Double) {
        let rate = seconds > 0 ? Double(bytes) / seconds : 0
        var line = "\r\(label)  \(format(bytes))"
        if let total, total > 0 {
            line += " / \(format(total)) (\(Int(100 * Double(bytes) / Double(total)))%)"
        }
        line += "  \(format(Int64(rate)))/s"
        if let total, rate > 0, total > bytes {
            let eta = Int(Double(total - bytes) / rate)
            line += String(format: "  ETA %d:%02d", eta / 60, eta % 60)
        }
        FileHandle.standardError.write(Data((line + "\u{1b}[K").utf8))
    }

    static func format(_ bytes: Int64) -> String {
        let b = Double(bytes)
        if b >= 1_073_741_824 { return String(format: "%.2f GiB", b / 1_073_741_824) }
        if b >= 1_048_576 { return String(format: "%.1f MiB", b / 1_048_576) }
        if b >= 1024 { return String(format: "%.1f KiB", b / 1024) }
        return "\(bytes) B"
    }
}
