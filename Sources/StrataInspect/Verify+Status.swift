import Foundation
import StrataCore

/// What compactors left behind: the status of a failed round ("compaction failing silently").
extension Verifier {
    /// `{c}/snapshot/compactor-status.json`, written by a compactor whose round failed. A status
    /// older than the pointer's version is history (the collection has published since).
    func checkCompactorStatus(_ c: String, publishedAt: Date?) {
        let key = layout.compactorStatusKey(c)
        let data: Data
        do {
            guard let (d, _) = try store.getDataIfExists(key) else {
                add(
                    VerifyCheck.compactorStatus, c, .passed, "no compactor has reported a failed round",
                    ["key": .string(key)])
                return
            }
            data = d
        } catch {
            addFailure(VerifyCheck.compactorStatus, c, "cannot read the compactor status", error, status: .warning)
            return
        }
        guard let s = try? StrataJSON.decode(CompactorStatus.self, from: data, object: key) else {
            add(
                VerifyCheck.compactorStatus, c, .warning, "the compactor status cannot be read",
                ["key": .string(key), "bytes": .int(data.count)],
                hint: "the next compactor that succeeds removes it; "
                    + "`snapctl store rm \(Layout().compactorStatusKey(c))` removes it now")
            return
        }
        var ev: VerifyEvidence = [
            "key": .string(key), "state": .string(s.state), "at": .string(StrataJSON.iso8601(s.at)),
            "compactor": .string("\(s.compactorId) on \(s.host)"), "error": .string(s.error),
        ]
        if let k = s.errorKind { ev["error_kind"] = .string(k) }
        if let publishedAt, publishedAt > s.at {
            add(
                VerifyCheck.compactorStatus, c, .info,
                "a round failed \(age(s.at)) ago, but \(c) has published since: \(s.error)", ev)
            return
        }
        add(
            VerifyCheck.compactorStatus, c, s.state == "refused" ? .failed : .warning,
            "the last compaction round \(s.state == "refused" ? "was refused" : "failed") \(age(s.at)) ago "
                + "(\(StrataJSON.iso8601(s.at)), \(s.compactorId) on \(s.host)): \(s.error)", ev,
            hint: s.fix.map { "the compactor says: \($0)" }
                ?? "compaction of \(c) is not making progress; the compactor retries with backoff")
    }
}
