import Foundation
import StrataCore

extension Verifier {
    /// Lists the store's top level: proves the endpoint answers, the bucket exists and the
    /// credentials may list it. Returns the collections found, or nil (after a finding) when the
    /// store cannot be used at all.
    func checkStoreAccess() -> [String]? {
        do {
            let found = try locator.collections()
            add(
                VerifyCheck.storeAccess, nil, .passed, "the store answers and the credentials may list it",
                ["store": .string(store.location)])
            return found
        } catch {
            findings.append(Verifier.storeAccessFinding(error, location: store.location))
            return nil
        }
    }

    /// A finding for a store that refused the first request, naming the cause (wrong key or
    /// secret, clock skew, missing bucket, access denied, wrong region, unreachable) and what
    /// to do about it.
    public static func storeAccessFinding(_ error: Error, location: String) -> VerifyFinding {
        let (detail, ownEvidence, ownHint) = explain(error)
        var evidence = ownEvidence
        evidence["store"] = .string(location)
        let message: String
        var hint: String
        if let e = error as? StoreError {
            switch e.kind {
            case .invalidCredentials:
                message =
                    "invalid credentials: the store refused the access key or its secret (or an expired session token)"
                hint =
                    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or --profile and ~/.aws/credentials) for this endpoint"
            case .clockSkew:
                message =
                    "clock skew: this machine's clock differs too much from the store's, so every request is refused"
                hint = "sync the clock (NTP: `timedatectl set-ntp true` or `chronyc makestep`)"
            case .noSuchBucket:
                message = "missing bucket: the bucket of \(location) does not exist at this endpoint"
                hint = "check the bucket name and the endpoint (AWS_ENDPOINT_URL); create it with `snapctl store mb`"
            case .accessDenied:
                message = "access denied: the credentials are valid but may not list \(location)"
                hint = "grant s3:ListBucket, s3:GetObject (and s3:PutObject for producers and compactors) on the bucket"
            case .wrongRegion:
                message = "wrong region: the bucket lives in another region than the one requests are signed for"
                hint = "set AWS_REGION (or --profile's region) to the bucket's region"
            case .configuration:
                message = "configuration error: the store cannot be used as configured"
                hint = "fix the settings named below (endpoint, region, credentials source)"
            case .transient, .throttled:
                message = "the store does not answer (or keeps failing): \(e.message)"
                hint = "check the endpoint (AWS_ENDPOINT_URL), the network and the service's health; then retry"
            default:
                message = "the store refused to list \(location) (\(e.kind.rawValue))"
                hint = "see the error below"
            }
            if let own = ownHint { hint += "; store says: \(own)" }
        } else {
            message = "the store cannot be listed"
            hint = ownHint ?? "see the error below"
        }
        evidence["error"] = .string(detail)
        return VerifyFinding(
            check: VerifyCheck.storeAccess, collection: nil, status: .failed, message: message,
            evidence: evidence, hint: hint)
    }

    func checkCollectionsFound(_ found: [String], foreign: [String] = []) {
        if !foreign.isEmpty {
            add(
                VerifyCheck.storeCollections, nil, .info,
                "\(foreign.count) prefix\(foreign.count == 1 ? " is" : "es are") not a Strata collection (no snapshot, "
                    + "deltas, quarantine or runs): another application's data in a shared bucket, not checked",
                ["other_prefixes": listed(foreign.map { layout.collectionPrefix($0) })])
        }
        if found.isEmpty {
            add(
                VerifyCheck.storeCollections, nil, settings.collections.isEmpty ? .warning : .info,
                "no collections in \(store.location)", ["store": .string(store.location)],
                hint: "check the bucket and the key prefix of --store; producers write {prefix}{collection}/delta/...")
            return
        }
        var ev: VerifyEvidence = ["collections": .list(found)]
        let missing = settings.collections.filter { !found.contains($0) }
        if !missing.isEmpty { ev["requested_but_absent"] = .list(missing) }
        add(
            VerifyCheck.storeCollections, nil, .passed,
            "\(found.count) collection\(found.count == 1 ? "" : "s") in the store: \(found.joined(separator: ", "))", ev
        )
    }
}
