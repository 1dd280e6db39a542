import Foundation
import StrataCore

extension VerifyReport {
    /// The report for people: grouped by collection, one line per check with a marker, the
    /// evidence and hint under anything not passed, then a summary line.
    ///
    /// - Parameters:
    ///   - unicode: ✓ i ! ✗ markers (a terminal); otherwise plain `ok`, `info`, `WARN`, `FAIL`.
    ///   - verbose: evidence under passed checks too.
    public func text(unicode: Bool, verbose: Bool = false) -> String {
        func marker(_ s: VerifyStatus) -> String {
            switch s {
            case .passed: return unicode ? "✓" : "ok  "
            case .info: return unicode ? "i" : "info"
            case .warning: return unicode ? "!" : "WARN"
            case .failed: return unicode ? "✗" : "FAIL"
            }
        }
        let width = max(20, (findings.map(\.check.count).max() ?? 0) + 2)
        var out = "snapctl verify: \(store)\nchecked at \(StrataJSON.iso8601(checkedAt))\n"
        var group: String?? = .none
        for f in findings {
            if group == nil || group! != f.collection {
                group = .some(f.collection)
                out += "\n" + (f.collection.map { "collection \($0)" } ?? "store") + "\n"
            }
            out +=
                "  \(marker(f.status)) \(f.check.padding(toLength: width, withPad: " ", startingAt: 0))\(f.message)\n"
            if f.status != .passed || verbose {
                let indent = String(repeating: " ", count: 6)
                for e in f.evidence.entries {
                    if case .list(let items) = e.value, items.count > 1 {
                        out += "\(indent)\(e.key):\n"
                        for item in items { out += "\(indent)  - \(item)\n" }
                    } else {
                        out += "\(indent)\(e.key): \(e.value)\n"
                    }
                }
                if let hint = f.hint, f.status != .passed { out += "\(indent)hint: \(hint)\n" }
            }
        }
        func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }
        let verdict: String
        switch status {
        case .failed: verdict = "FAILED"
        case .warning: verdict = "OK with warnings"
        case .info, .passed: verdict = "OK"
        }
        out +=
            "\nsummary: \(summary.passed) passed, \(summary.info) info, \(plural(summary.warning, "warning")), "
            + "\(summary.failed) failed: \(verdict)\n"
        return out
    }
}
