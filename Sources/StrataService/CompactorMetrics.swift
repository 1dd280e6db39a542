import CoreMetrics
import Foundation
import Metrics
import Prometheus
import StrataCompactor
import StrataCore
import Synchronization

/// The compactor's metrics (names in Docs/OPERATIONS.md), kept in their own Prometheus registry so
/// that a process (or a test) can hold several without a global bootstrap. Labels carry only
/// collection names, fixed vocabularies (operation, outcome, kind, reason), never keys or secrets.
public final class CompactorMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    /// Oldest pending run per collection; the age gauge is computed from it at each scrape.
    private let oldestPending = Mutex<[String: Date]>([:])

    public static let publishBuckets: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900]
    public static let requestBuckets: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
        5, 10, 30,
    ]

    public init() {
        registry = PrometheusCollectorRegistry()
        var f = PrometheusMetricsFactory(registry: registry)
        f.durationHistogramBuckets = [
            "strata_publish_duration_seconds": Self.publishBuckets.map { Duration.milliseconds(Int64($0 * 1000)) },
            "strata_store_request_duration_seconds": Self.requestBuckets.map {
                Duration.microseconds(Int64($0 * 1_000_000))
            },
        ]
        factory = f
    }

    // MARK: recording

    func counter(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
    }

    func gauge(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: name, dimensions: labels, factory: factory)
    }

    func timer(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Timer {
        CoreMetrics.Timer(label: name, dimensions: labels, factory: factory)
    }

    /// Creates every per-collection series at zero, so dashboards and alerts see them before the
    /// first event (an absent series cannot alert).
    public func register(collections: [String]) {
        for c in collections {
            let l = [("collection", c)]
            for name in [
                "strata_runs_applied_total", "strata_rows_upserted_total", "strata_rows_deleted_total",
                "strata_bytes_uploaded_total", "strata_bytes_downloaded_total",
                "strata_pointer_conflicts_total", "strata_lease_skips_total",
            ] {
                counter(name, l).increment(by: 0)
            }
            gauge("strata_runs_pending", l).record(0)
            gauge("strata_oldest_pending_run_age_seconds", l).record(0)
            gauge("strata_last_publish_timestamp_seconds", l).record(0)
            _ = timer("strata_publish_duration_seconds", l)
        }
        gauge("strata_up", []).record(1)
        counter("strata_passes_total", []).increment(by: 0)
        counter("strata_wakes_total", []).increment(by: 0)
    }

    /// One round's outcome.
    public func record(_ s: CompactionSummary, now: Date = Date()) {
        let l = [("collection", s.collection)]
        switch s.outcome {
        case .leaseHeld:
            counter("strata_lease_skips_total", l).increment()
            return
        case .published:
            counter("strata_runs_applied_total", l).increment(by: s.runsApplied.count)
            counter("strata_rows_upserted_total", l).increment(by: s.rowsUpserted)
            counter("strata_rows_deleted_total", l).increment(by: s.rowsDeleted)
            gauge("strata_last_publish_timestamp_seconds", l).record(now.timeIntervalSince1970)
            if let total = s.seconds["total"] {
                timer("strata_publish_duration_seconds", l).recordNanoseconds(Int64(total * 1e9))
            }
        case .upToDate:
            break
        }
        counter("strata_bytes_uploaded_total", l).increment(by: Int(s.bytesUploaded))
        counter("strata_bytes_downloaded_total", l).increment(by: Int(s.bytesDownloaded))
        if s.conflicts > 0 { counter("strata_pointer_conflicts_total", l).increment(by: s.conflicts) }
        for q in s.runsQuarantined {
            counter("strata_runs_quarantined_total", [("collection", s.collection), ("reason", Self.token(q.reason))])
                .increment()
        }
        gauge("strata_runs_pending", l).record(s.runsDeferred)
        oldestPending.withLock { $0[s.collection] = s.oldestPendingAt }
        if s.oldestPendingAt == nil { gauge("strata_oldest_pending_run_age_seconds", l).record(0) }
        refreshAges(now: now)
    }

    /// A failed round. `kind` is the error's kind (StoreError, StrataError), never its message.
    public func recordError(collection: String, _ error: Error) {
        counter("strata_compaction_errors_total", [("collection", collection), ("kind", Self.kind(of: error))])
            .increment()
    }

    public func recordPass() { counter("strata_passes_total", []).increment() }
    public func recordWake() { counter("strata_wakes_total", []).increment() }

    /// One store request: `operation` is head/get/get_data/put/delete/delete_batch/list.
    public func recordRequest(operation: String, outcome: String, seconds: Double) {
        counter("strata_store_requests_total", [("operation", operation), ("outcome", outcome)]).increment()
        timer("strata_store_request_duration_seconds", [("operation", operation)])
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    func refreshAges(now: Date) {
        let ages = oldestPending.withLock { $0 }
        for (c, oldest) in ages {
            gauge("strata_oldest_pending_run_age_seconds", [("collection", c)])
                .record(max(0, now.timeIntervalSince(oldest)))
        }
    }

    /// The Prometheus text exposition (version 0.0.4).
    public func exposition(now: Date = Date()) -> String {
        refreshAges(now: now)
        return registry.emitToString()
    }

    static func kind(of error: Error) -> String {
        switch error {
        case let e as StoreError: return "store_" + e.kind.rawValue
        case let e as StrataError: return e.kind.rawValue
        case is CancellationError: return "cancelled"
        default: return "other"
        }
    }

    /// Keeps a label value to a safe vocabulary: letters, digits, '_' and '-', at most 64.
    static func token(_ s: String) -> String {
        String(s.prefix(64).map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" ? $0 : "_" })
    }
}
