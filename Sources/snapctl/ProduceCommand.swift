import ArgumentParser
import Foundation
import Logging
import StrataCore
import StrataEmbed
import StrataProducer

#if canImport(Glibc)
    import Glibc

    /// glibc's mallopt(3) (malloc.h is not in the Glibc module).
    @_silgen_name("mallopt") func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
#endif

/// `snapctl produce`: what an OCR pipeline runs after each job. A thin shell over `RunProducer`:
/// it checks the command line (exit 2), makes the run id up front so a failed attempt can be
/// retried with it, and prints results on stdout (logs go to stderr).
struct ProduceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Publish NDJSON rows as a run: one delta per collection and one COMPACTION_RUN record.",
        discussion: """
            Each --collection is paired with an --input, in order. Every input is validated \
            completely before anything is uploaded: one bad line publishes nothing and exits 1, \
            naming the file, the line, the id, the field and the problem (rules: \
            Docs/FORMATS.md). Deltas are uploaded first and the record runs/{run_id}.json last, \
            create-only, so a run is either fully published or not at all.

            Prints the run id, one per line. An input larger than --max-rows or --max-bytes \
            becomes several runs ({run_id}, {run_id}-p000002, ...), applied in that order. With \
            --json, prints the published runs: run_id, record_key, each delta's key and counts, \
            labels, and created (false when it was already published).

            Retrying: retry with the same --run-id after a crash or timeout; nothing is published \
            twice. A failed attempt prints its run id on stderr. If the run is already published, \
            the retry uploads nothing and prints the same id.

            Directory mode (--dir DIR) publishes each job of DIR as a run and keeps a checkpoint \
            (DIR/.strata-produce-checkpoint.json, or --checkpoint FILE): running the same command \
            again skips published jobs and retries an interrupted one under its saved run id. \
            With --collection C, each DIR/NAME.ndjson (or .jsonl) is a job for C, with optional \
            labels in NAME.labels.json. Without it, each subdirectory is a job holding one \
            COLLECTION.ndjson per collection and an optional labels.json. Move jobs into DIR \
            atomically (write elsewhere, then rename). Prints one line per job: \
            published|skipped, the job, the run id (tab-separated).

            A job of a directory that fails (a bad line, labels, an embedding the server \
            rejects, a dimension) is marked failed in the checkpoint with its reason and the \
            queue goes on; failed jobs are set aside until --retry-failed (or until their files \
            are fixed). --status lists pending, published and failed jobs with reasons (no \
            store needed). --max-jobs N tries at most N jobs, then exits (cron mode).

            Embeddings (--embed): rows may leave out "embedding"; their "embed_text" (else their \
            "document") is embedded through an OpenAI-compatible POST {url}/embeddings \
            (OPENAI_BASE_URL or --embed-url; OPENAI_API_KEY, never printed; --embed-model or \
            STRATA_EMBED_MODEL). Vectors a job obtained are kept in its spool, so a retry pays \
            for nothing twice; identical texts are embedded once. The dimension is checked \
            against the collection's published one before anything is uploaded. A summary \
            (inputs, tokens, requests, retries, seconds) goes to stderr, and into --json. \
            Settings: Docs/OPERATIONS.md.

            Exit codes: 0 published (or already published); 1 a bad input line, a conflict, an \
            embedding failure or a store failure; 2 a usage error (options, names, labels, \
            unreadable files); 3 directory mode: some jobs failed (the others were published).

            Examples:
              snapctl produce --store s3://receipts \\
                --collection lines --input lines.ndjson \\
                --collection words --input words.ndjson --label image_id=IMG-7
              # after a timeout, the same run again: nothing is published twice
              snapctl produce --store s3://receipts --collection lines \\
                --input lines.ndjson --run-id 20261121T201408123Z-4f1c0a9be203
              snapctl produce --store s3://receipts --dir /var/spool/ocr-out
              snapctl produce --store s3://receipts --dir in/ --collection lines
              OPENAI_BASE_URL=http://127.0.0.1:8080/v1 snapctl produce --store s3://receipts \
                --embed --embed-input-types passage,query --collection lines --input texts.ndjson
              snapctl produce --dir in/ --status
            """)

    @OptionGroup var global: GlobalOptions

    @Option(
        name: .customLong("collection"),
        help: ArgumentHelp("A collection (lines, words); pairs with the --input after it.", valueName: "name"))
    var collections: [String] = []

    @Option(
        name: .customLong("input"),
        help: ArgumentHelp("The NDJSON file of the --collection before it.", valueName: "file"))
    var inputs: [String] = []

    @Option(
        name: .customLong("label"),
        help: ArgumentHelp(
            "A label for the run record, key=value (repeatable), e.g. image_id=IMG-7.",
            valueName: "key=value"))
    var labels: [String] = []

    @Option(
        help: ArgumentHelp(
            "The run id; retry with the same --run-id after a crash or timeout: nothing is published twice.",
            valueName: "id"))
    var runId: String?

    @Option(help: "Require every embedding to have this many values (default: fixed by the first row).")
    var dimension: Int?

    @Option(help: "At most this many rows per collection in one run; more become several runs (default 50000).")
    var maxRows: Int?

    @Option(
        help: ArgumentHelp(
            "At most this much NDJSON input per collection in one run: bytes, or with K, M, G (default 256M).",
            valueName: "size"))
    var maxBytes: String?

    @Option(help: ArgumentHelp("Where deltas and bundles are built (default: $TMPDIR or /tmp).", valueName: "dir"))
    var workDir: String?

    @Option(
        help: ArgumentHelp(
            "Refuse rows of collection C whose id does not match (repeatable): a pattern or receipt-line, receipt-word.",
            valueName: "C=pattern"))
    var idPattern: [String] = []

    @Option(help: ArgumentHelp("Directory mode: publish every job in this directory.", valueName: "dir"))
    var dir: String?

    @Option(
        help: ArgumentHelp(
            "Directory mode: the checkpoint file (default: {dir}/.strata-produce-checkpoint.json).",
            valueName: "file"))
    var checkpoint: String?

    @Flag(help: "Print the published runs as JSON instead of their ids.")
    var json = false

    @Flag(help: "Directory mode: list pending, published and failed jobs with reasons, then exit.")
    var status = false

    @Flag(help: "Directory mode: try the failed jobs again.")
    var retryFailed = false

    @Option(help: ArgumentHelp("Directory mode: try at most this many jobs, then exit.", valueName: "n"))
    var maxJobs: Int?

    @OptionGroup var embedding: EmbedOptions

    func run() throws {
        #if canImport(Glibc)
            // Embedding requests run on worker threads; glibc would give each its own malloc arena
            // (memory it keeps). Two arenas keep the producer's footprint small (OPERATIONS.md).
            let mArenaMax: Int32 = -8
            _ = glibcMallopt(mArenaMax, 2)
        #endif
        try runReportingErrors {
            if status {
                guard let dir else { throw CLIError.usage("--status applies only to --dir") }
                try printStatus(dir: dir)
                return
            }
            let request = try checkedRequest()
            let logger = global.logger("strata.producer")
            let (store, layout, _) = try global.openStore()
            let producer = RunProducer(store: store, layout: layout, settings: request.settings, logger: logger)
            switch request.mode {
            case .inputs(let inputs, let runId):
                try produceInputs(producer, inputs: inputs, labels: request.labels, runId: runId, logger: logger)
            case .directory(let dir, let dirLayout):
                try produceDirectory(producer, dir: dir, layout: dirLayout, labels: request.labels, logger: logger)
            }
        }
    }

    // MARK: modes

    private func produceInputs(
        _ producer: RunProducer, inputs: [ProducerInput], labels: [String: String], runId: String, logger: Logger
    ) throws {
        logger.info("producing", metadata: ["run": "\(runId)", "collections": "\(inputs.map(\.collection))"])
        let runs: [PublishedRun]
        do {
            runs = try producer.produce(inputs: inputs, labels: labels, runId: runId)
        } catch let e as StrataError where e.kind == .invalidInput {
            // Validation happens before any upload, so nothing of this run exists in the store.
            throw ProduceCommand.failure(e, note: "nothing was published")
        } catch let e as StrataError where [.conflict, .refused, .unsupportedVersion].contains(e.kind) {
            throw e  // retrying the same thing cannot help; the message says what to do
        } catch let e as EmbeddingError {
            // Embedding comes before any upload; what was obtained is in the spool.
            throw ProduceCommand.failure(
                e,
                note: "nothing was published; the vectors obtained so far are kept: retry with --run-id \(runId) "
                    + "and they are not paid for again")
        } catch {
            // A store or local failure may leave uploaded deltas without a record (harmless
            // orphans, collected later); the same run id finishes the job without duplicates.
            throw ProduceCommand.failure(
                error,
                note: "run \(runId) is not published (its deltas may be partly uploaded); "
                    + "retry with --run-id \(runId): nothing is published twice")
        }
        if runs.isEmpty {
            logger.notice("the inputs hold no rows; nothing was published", metadata: ["run": "\(runId)"])
        }
        for r in runs where !r.created {
            logger.notice("already published; nothing new was written", metadata: ["run": "\(r.runId)"])
        }
        let stats = producer.embeddingStats
        if let stats { FileHandle.standardError.write(Data("snapctl: \(stats.summary)\n".utf8)) }
        if json {
            if let stats {
                struct Out: Encodable {
                    var runs: [PublishedRun]
                    var embedding: EmbeddingStats
                }
                print(try ProduceCommand.encodeJSON(Out(runs: runs, embedding: stats)))
            } else {
                print(try ProduceCommand.encodeJSON(runs))
            }
        } else {
            for r in runs { print(r.runId) }
        }
    }

    private func printStatus(dir: String) throws {
        let layout: DirectoryLayout = collections.first.map { .files(collection: $0) } ?? .jobDirectories
        let st = try RunProducer.directoryStatus(dir, layout: layout, checkpointPath: checkpoint)
        if json {
            print(try ProduceCommand.encodeJSON(st))
            return
        }
        for j in st.jobs {
            print("\(j.state.rawValue)\t\(j.name)\t\(j.runId ?? "-")\t\(j.reason ?? "")")
        }
        let count = { (s: DirectoryStatus.Job.State) in st.jobs.filter { $0.state == s }.count }
        FileHandle.standardError.write(
            Data(
                ("snapctl: \(count(.pending)) pending, \(count(.planned)) planned, \(count(.published)) published, "
                    + "\(count(.failed)) failed\n").utf8))
    }

    private func produceDirectory(
        _ producer: RunProducer, dir: String, layout: DirectoryLayout, labels: [String: String], logger: Logger
    ) throws {
        let report: DirectoryReport
        do {
            report = try producer.produceDirectory(
                dir, layout: layout, labels: labels, checkpointPath: checkpoint, retryFailed: retryFailed,
                maxJobs: maxJobs)
        } catch {
            throw ProduceCommand.failure(
                error,
                note: "jobs published before this error are recorded in the checkpoint; "
                    + "fix the cause and run the same command again to resume")
        }
        let published = report.jobs.filter { !$0.skipped }
        logger.info(
            "directory done",
            metadata: [
                "directory": "\(dir)", "published_jobs": "\(published.count)",
                "skipped_jobs": "\(report.jobs.count - published.count)",
                "runs": "\(report.published.count)", "checkpoint": "\(report.checkpointPath)",
            ])
        if let stats = producer.embeddingStats {
            FileHandle.standardError.write(Data("snapctl: \(stats.summary)\n".utf8))
        }
        let failed = report.failed
        defer {
            if !failed.isEmpty {
                FileHandle.standardError.write(
                    Data(
                        ("snapctl: \(failed.count) job(s) failed: \(failed.map(\.name).joined(separator: ", ")) "
                            + "(see --status; fix them and run again, or --retry-failed)\n").utf8))
            }
        }
        if json {
            print(try ProduceCommand.encodeJSON(report))
            if !failed.isEmpty { throw ExitCode(3) }
            return
        }
        // One line per run or skipped job, tab-separated: easy to read and to cut(1).
        for job in report.jobs {
            if let reason = job.failed {
                print("failed\t\(job.name)\t\(reason)")
            } else if job.skipped {
                print("skipped\t\(job.name)\talready published")
            } else if job.runs.isEmpty {
                print("empty\t\(job.name)\tno rows, nothing published")
            } else {
                for r in job.runs { print("\(r.created ? "published" : "existing")\t\(job.name)\t\(r.runId)") }
            }
        }
        if !failed.isEmpty { throw ExitCode(3) }
    }

    // MARK: checking the command line

    enum Mode {
        case inputs([ProducerInput], runId: String)
        case directory(String, DirectoryLayout)
    }

    struct Request {
        var mode: Mode
        var labels: [String: String]
        var settings: ProducerSettings
    }

    /// Every usage error (exit 2) is found here, before the store is opened.
    func checkedRequest() throws -> Request {
        let labels = try ProduceCommand.parseLabels(self.labels)
        var settings = ProducerSettings()
        if let maxJobs, maxJobs < 1 { throw CLIError.usage("--max-jobs \(maxJobs): must be at least 1") }
        if dir == nil && (retryFailed || maxJobs != nil) {
            throw CLIError.usage("--retry-failed and --max-jobs apply only to --dir")
        }
        settings.embedding = try embedding.settings()
        if let s = embedding.spoolDir { settings.spoolDirectory = s }
        if let maxRows {
            guard maxRows >= 1 else { throw CLIError.usage("--max-rows \(maxRows): must be at least 1") }
            settings.maxRowsPerRun = maxRows
        }
        if let maxBytes {
            settings.maxInputBytesPerRun = try ProduceCommand.parseByteSize(maxBytes, option: "--max-bytes")
        }
        for text in idPattern {
            do {
                let (c, pattern) = try IDPattern.parseOption(text)
                guard let c else {
                    throw CLIError.usage(
                        "--id-pattern \(text): name the collection, e.g. --id-pattern lines=receipt-line")
                }
                settings.idPatterns[c] = pattern
            } catch let e as IDPattern.ParseError {
                throw CLIError.usage(e.description)
            }
        }
        if let workDir {
            guard !workDir.isEmpty else { throw CLIError.usage("--work-dir: must not be empty") }
            settings.workDirectory = workDir
        }
        if let dimension {
            // The format's limit (Docs/FORMATS.md): 1 to 65536 values.
            guard (1...65536).contains(dimension) else {
                throw CLIError.usage("--dimension \(dimension): must be 1 to 65536")
            }
        }

        if let dir {
            guard inputs.isEmpty else {
                throw CLIError.usage("--dir and --input exclude each other: a directory's jobs are its files")
            }
            guard runId == nil else {
                throw CLIError.usage(
                    "--run-id does not apply to --dir: each job's run id is kept in the checkpoint, "
                        + "so running the same command again resumes safely")
            }
            guard dimension == nil else { throw CLIError.usage("--dimension applies only to --input files") }
            guard collections.count <= 1 else {
                throw CLIError.usage("--dir takes at most one --collection (got \(collections.count))")
            }
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
                throw CLIError.usage("--dir \(dir): no such directory")
            }
            let dirLayout: DirectoryLayout
            if let c = collections.first {
                try ProduceCommand.checkCollection(c)
                dirLayout = .files(collection: c)
            } else {
                dirLayout = .jobDirectories
            }
            return Request(mode: .directory(dir, dirLayout), labels: labels, settings: settings)
        }

        guard checkpoint == nil else { throw CLIError.usage("--checkpoint applies only to --dir") }
        guard !collections.isEmpty || !inputs.isEmpty else {
            throw CLIError.usage(
                "nothing to publish: give --collection NAME --input FILE (repeatable), or --dir DIR")
        }
        guard collections.count == inputs.count else {
            throw CLIError.usage(
                "got \(collections.count) --collection and \(inputs.count) --input: "
                    + "give them in pairs, e.g. --collection lines --input lines.ndjson")
        }
        var seen = Set<String>()
        var pairs: [ProducerInput] = []
        for (c, path) in zip(collections, inputs) {
            try ProduceCommand.checkCollection(c)
            guard seen.insert(c).inserted else {
                throw CLIError.usage(
                    "--collection \(c) is given twice: one input per collection and run "
                        + "(merge the files, or publish them as separate runs)")
            }
            try ProduceCommand.checkReadableFile(path, option: "--input")
            pairs.append(ProducerInput(collection: c, path: path, dimension: dimension))
        }
        let id = runId ?? Identifiers.make()
        // Same rule as the producer (room for the -p000002 suffix of split runs).
        guard Identifiers.isValid(id), id.utf8.count <= 100 else {
            throw CLIError.usage(
                "--run-id \"\(id)\": must be 1 to 100 characters of A-Z a-z 0-9 - _ . "
                    + "(use the id printed by the earlier attempt)")
        }
        return Request(mode: .inputs(pairs, runId: id), labels: labels, settings: settings)
    }

    static func checkCollection(_ name: String) throws {
        do { try Layout.validate(collection: name) } catch let e as StrataError {
            throw CLIError.usage("--collection \"\(name)\": \(e.message)")
        }
    }

    static func checkReadableFile(_ path: String, option: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CLIError.usage("\(option) \(path): no such file")
        }
        guard !isDir.boolValue else { throw CLIError.usage("\(option) \(path): is a directory, not an NDJSON file") }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw CLIError.usage("\(option) \(path): not readable (check its permissions)")
        }
    }

    /// `key=value` pairs; the value may contain `=` (and be empty), the key may not.
    static func parseLabels(_ raw: [String]) throws -> [String: String] {
        var labels: [String: String] = [:]
        for item in raw {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw CLIError.usage("--label \"\(item)\": expected key=value, e.g. --label image_id=IMG-7")
            }
            let key = String(item[..<eq])
            guard labels[key] == nil else { throw CLIError.usage("--label \(key) is given twice") }
            labels[key] = String(item[item.index(after: eq)...])
        }
        if let problem = RunRecord.labelProblem(labels) { throw CLIError.usage("--label: \(problem)") }
        return labels
    }

    /// "1048576", "512K", "256M", "1G" (binary units; a trailing "iB" or "B" is accepted).
    static func parseByteSize(_ s: String, option: String) throws -> Int64 {
        var text = Substring(s.trimmingCharacters(in: .whitespaces).uppercased())
        if text.hasSuffix("IB") { text = text.dropLast(2) } else if text.hasSuffix("B") { text = text.dropLast() }
        let units: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var mult: Int64 = 1
        if let u = text.last, let m = units[u] {
            mult = m
            text = text.dropLast()
        }
        guard let v = Int64(text), v >= 1, v <= Int64.max / mult else {
            throw CLIError.usage("\(option) \(s): expected a positive size like 1048576, 64M or 1G")
        }
        return v * mult
    }

    /// Prints the error and a note on what it means for the run, keeping the error's exit code.
    static func failure(_ error: Error, note: String) -> ExitCode {
        let (code, text) = describe(error)
        FileHandle.standardError.write(Data("snapctl: \(text)\nsnapctl: \(note)\n".utf8))
        return ExitCode(code)
    }

    static func encodeJSON<T: Encodable>(_ value: T) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try e.encode(value), as: UTF8.self)
    }
}

/// The embedding options of `produce` and `query` (Docs/OPERATIONS.md, "Embeddings").
struct EmbedOptions: ParsableArguments {
    @Flag(help: "Embed rows without an embedding: their embed_text, else their document.")
    var embed = false

    @Option(
        help: ArgumentHelp(
            "The OpenAI-compatible API base (default: $OPENAI_BASE_URL, else https://api.openai.com/v1).",
            valueName: "url"))
    var embedUrl: String?

    @Option(help: ArgumentHelp("The embedding model (default: $STRATA_EMBED_MODEL).", valueName: "name"))
    var embedModel: String?

    @Option(help: ArgumentHelp("Sent as \"dimensions\"; every vector must have this many values.", valueName: "n"))
    var embedDimensions: Int?

    @Option(
        help: ArgumentHelp(
            "input_type for stored texts and for queries, e.g. passage,query (e5 models); none sends none "
                + "(default: $STRATA_EMBED_INPUT_TYPES, else none).", valueName: "passage,query"))
    var embedInputTypes: String?

    @Option(help: ArgumentHelp("At most this many inputs a request (default 256).", valueName: "n"))
    var embedBatch: Int?

    @Option(help: ArgumentHelp("At most this many bytes of text a request (default 1M).", valueName: "size"))
    var embedMaxBytes: String?

    @Option(help: ArgumentHelp("At most this many estimated tokens a request (default 300000).", valueName: "n"))
    var embedMaxTokens: Int?

    @Option(help: ArgumentHelp("Embedding requests in flight (default 2).", valueName: "n"))
    var embedConcurrency: Int?

    @Option(help: ArgumentHelp("One request's timeout in seconds (default 120).", valueName: "s"))
    var embedTimeout: Double?

    @Option(help: ArgumentHelp("Give a batch up after retrying this long, seconds (default 600).", valueName: "s"))
    var embedRetryTime: Double?

    @Option(
        help: ArgumentHelp("Where jobs keep the vectors they obtained (default: see OPERATIONS.md).", valueName: "dir"))
    var spoolDir: String?

    @Flag(help: "Ask for float arrays instead of base64 vectors.")
    var embedFloat = false

    /// The settings, or nil without --embed; usage errors for bad values.
    func settings(required: Bool = false) throws -> EmbeddingSettings? {
        let given =
            embedUrl != nil || embedModel != nil || embedDimensions != nil || embedBatch != nil
            || embedMaxBytes != nil || embedMaxTokens != nil || embedConcurrency != nil || embedTimeout != nil
            || embedRetryTime != nil || embedInputTypes != nil || spoolDir != nil || embedFloat
        guard embed || required else {
            if given { throw CLIError.usage("the --embed-* options apply only with --embed") }
            return nil
        }
        var s = EmbeddingSettings.fromEnvironment()
        if let embedUrl { s.baseURL = embedUrl }
        if let embedModel { s.model = embedModel }
        if let embedDimensions { s.dimensions = embedDimensions }
        if let embedInputTypes { s.setInputTypes(embedInputTypes) }
        if let embedBatch { s.maxInputsPerRequest = embedBatch }
        if let embedMaxBytes {
            s.maxBytesPerRequest = Int(try ProduceCommand.parseByteSize(embedMaxBytes, option: "--embed-max-bytes"))
        }
        if let embedMaxTokens { s.maxTokensPerRequest = embedMaxTokens }
        if let embedConcurrency { s.concurrency = embedConcurrency }
        if let embedTimeout { s.requestTimeout = embedTimeout }
        if let embedRetryTime { s.maxRetryTime = embedRetryTime }
        if embedFloat { s.preferBase64 = false }
        if let p = s.problem { throw CLIError.usage("embedding: \(p)") }
        return s
    }
}
