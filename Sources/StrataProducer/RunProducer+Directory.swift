import Foundation
import Logging
import StrataCore
import StrataCrypto

extension RunProducer {
    /// The default checkpoint file of a directory (hidden, so it is never taken for an input).
    public static let checkpointFileName = ".strata-produce-checkpoint.json"

    /// Publishes every job of `directory`, one at a time in name order, recording progress in a
    /// checkpoint file (default `directory/.strata-produce-checkpoint.json`). Run it again after
    /// an interruption: published jobs are skipped, the interrupted one is retried with the same
    /// run id, and no job is published twice. A job whose files changed after it was planned or
    /// published is refused. Stops at the first failing job.
    ///
    /// Write jobs into the directory atomically (write elsewhere, then rename in): a job is read
    /// as it is when its turn comes.
    public func produceDirectory(
        _ directory: String, layout dirLayout: DirectoryLayout,
        labels: [String: String] = [:], checkpointPath: String? = nil
    ) throws
        -> DirectoryReport
    {
        let checkpointPath = checkpointPath ?? directory + "/" + RunProducer.checkpointFileName
        let lock = try FileLock(checkpointPath + ".lock", what: "directory \(directory)")
        defer { withExtendedLifetime(lock) {} }
        var checkpoint = try Checkpoint.load(checkpointPath, store: store.location, prefix: layout.prefix)
        let jobs = try listJobs(directory, dirLayout)
        logger.info("producing a directory", metadata: ["directory": "\(directory)", "jobs": "\(jobs.count)"])

        var report = DirectoryReport(jobs: [], checkpointPath: checkpointPath)
        for job in jobs {
            var jobLabels = labels
            for (k, v) in try readLabels(job.labelsPath) { jobLabels[k] = v }
            try check(inputs: job.inputs, labels: jobLabels)
            let fingerprint = try self.fingerprint(job.inputs, labels: jobLabels)
            var entry = checkpoint.jobs[job.name]
            if let e = entry, e.fingerprint != fingerprint {
                throw StrataError(
                    .refused, object: "\(directory)/\(job.name)",
                    message:
                        "changed after it was \(e.state == .published ? "published" : "planned") as run \(e.runId)",
                    fix: "a published job is never changed: put new data in a new job; if run \(e.runId) was never "
                        + "published (snapctl verify), remove the job's entry from \(checkpointPath)")
            }
            if let e = entry, e.state == .published {
                logger.debug("already published", metadata: ["job": "\(job.name)", "run": "\(e.runId)"])
                report.jobs.append(.init(name: job.name, runs: [], skipped: true))
                continue
            }
            if entry == nil {
                // Persist the run id before anything is uploaded, so a retry reuses it.
                entry = Checkpoint.Job(
                    runId: Identifiers.make(), fingerprint: fingerprint, state: .planned, runIds: [],
                    updatedAt: RunRecord.timestamp(Date()))
                checkpoint.jobs[job.name] = entry
                try checkpoint.save(checkpointPath)
            }
            let runs = try produce(inputs: job.inputs, labels: jobLabels, runId: entry!.runId)
            entry!.state = .published
            entry!.runIds = runs.map(\.runId)
            entry!.updatedAt = RunRecord.timestamp(Date())
            checkpoint.jobs[job.name] = entry
            try checkpoint.save(checkpointPath)
            report.jobs.append(.init(name: job.name, runs: runs, skipped: false))
        }
        return report
    }

    struct Job {
        var name: String
        var inputs: [ProducerInput]
        var labelsPath: String
    }

    static func isInputName(_ name: String) -> Bool {
        !name.hasPrefix(".") && (name.hasSuffix(".ndjson") || name.hasSuffix(".jsonl"))
    }

    static func stem(_ name: String) -> String {
        name.hasSuffix(".ndjson") ? String(name.dropLast(7)) : String(name.dropLast(6))
    }

    func listJobs(_ directory: String, _ dirLayout: DirectoryLayout) throws -> [Job] {
        func entries(_ dir: String) throws -> [String] {
            do {
                return try FileManager.default.contentsOfDirectory(atPath: dir)
                    .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            } catch {
                throw StrataError(
                    .notFound, object: dir, message: "cannot list the directory: \(error.localizedDescription)",
                    fix: "check the path")
            }
        }
        func kind(_ path: String) -> FileAttributeType? {
            (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
        }
        switch dirLayout {
        case .files(let collection):
            return try entries(directory).filter {
                RunProducer.isInputName($0) && kind(directory + "/" + $0) == .typeRegular
            }
            .map { name in
                Job(
                    name: name, inputs: [ProducerInput(collection: collection, path: directory + "/" + name)],
                    labelsPath: directory + "/" + RunProducer.stem(name) + ".labels.json")
            }
        case .jobDirectories:
            var jobs: [Job] = []
            for name in try entries(directory)
            where !name.hasPrefix(".") && kind(directory + "/" + name) == .typeDirectory {
                let dir = directory + "/" + name
                let inputs = try entries(dir).filter {
                    RunProducer.isInputName($0) && kind(dir + "/" + $0) == .typeRegular
                }
                .map { ProducerInput(collection: RunProducer.stem($0), path: dir + "/" + $0) }
                guard !inputs.isEmpty else {
                    throw StrataError(
                        .invalidInput, object: dir, message: "holds no <collection>.ndjson file",
                        fix: "put e.g. lines.ndjson and words.ndjson in each job directory")
                }
                jobs.append(Job(name: name, inputs: inputs, labelsPath: dir + "/labels.json"))
            }
            return jobs
        }
    }

    /// A labels file: a flat JSON object of string values; none when the file does not exist.
    func readLabels(_ path: String) throws -> [String: String] {
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw StrataError(
                .invalidInput, object: path, message: "is not a JSON object",
                fix: "write labels as {\"image_id\": \"...\"}")
        }
        var labels: [String: String] = [:]
        for (k, v) in object {
            guard let s = v as? String else {
                throw StrataError(
                    .invalidInput, object: path, field: k, message: "is not a string",
                    fix: "label values are strings; quote numbers")
            }
            labels[k] = s
        }
        return labels
    }

    /// SHA-256 over each input (collection, dimension, file hash) and the labels.
    func fingerprint(_ inputs: [ProducerInput], labels: [String: String]) throws -> String {
        var text = ""
        for input in inputs.sorted(by: { $0.collection < $1.collection }) {
            let hash: String
            do { hash = try SHA256.hexOfFile(atPath: input.path).hex } catch {
                throw StrataError(.io, object: input.path, message: "cannot read: \(error.localizedDescription)")
            }
            text += "input\t\(input.collection)\t\(input.dimension.map(String.init) ?? "-")\t\(hash)\n"
        }
        for (k, v) in labels.sorted(by: { $0.key < $1.key }) {
            text += "label\t\(escapeField(k))\t\(escapeField(v))\n"
        }
        return SHA256.hex(text)
    }
}

/// Escapes tabs and newlines so a fingerprint line cannot be forged by a label.
private func escapeField(_ s: String) -> String {
    s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\t", with: "\\t")
        .replacingOccurrences(of: "\n", with: "\\n")
}
