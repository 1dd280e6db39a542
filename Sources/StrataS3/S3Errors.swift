import Foundation
import StrataCore

/// S3's XML error document: `<Error><Code/><Message/><RequestId/>...</Error>`.
struct S3ErrorBody {
    var code: String?
    var message: String?
    var requestId: String?
    /// AuthorizationHeaderMalformed: the region the bucket expects.
    var region: String?
    /// PermanentRedirect: the endpoint to use.
    var endpoint: String?

    static func parse(_ data: Data) -> S3ErrorBody? {
        guard !data.isEmpty, let root = XMLNode.parse(data), root.name == "Error" else { return nil }
        return S3ErrorBody(
            code: root.value("Code"), message: root.value("Message"), requestId: root.value("RequestId"),
            region: root.value("Region"), endpoint: root.value("Endpoint"))
    }
}

/// What an operation needs, for the access-denied hint.
enum S3Permission {
    static func forOperation(_ operation: String) -> String {
        switch operation {
        case "HeadObject", "GetObject": return "s3:GetObject"
        case "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload": return "s3:PutObject"
        case "DeleteObject", "DeleteObjects": return "s3:DeleteObject"
        case "ListObjectsV2", "HeadBucket": return "s3:ListBucket"
        case "CreateBucket": return "s3:CreateBucket"
        case "ListMultipartUploads": return "s3:ListBucketMultipartUploads"
        case "AbortMultipartUpload": return "s3:AbortMultipartUpload"
        default: return "the permission for \(operation)"
        }
    }
}

/// Turns an S3 error response into a `StoreError` with a hint a person can act on.
struct S3ErrorMapper {
    var bucket: String
    var region: String
    var credentialsSource: String
    var accessKeyId: String?

    func error(
        operation: String, key: String?, status: Int, headers: [String: String], body: Data,
        conditional: Bool = false
    ) -> StoreError {
        let parsed = S3ErrorBody.parse(body)
        let code = parsed?.code ?? headers["x-amz-error-code"]
        let requestId = parsed?.requestId ?? headers["x-amz-request-id"]
        var message = parsed?.message ?? headers["x-amz-error-message"] ?? Self.statusText(status)
        if message.isEmpty { message = Self.statusText(status) }
        func make(_ kind: StoreError.Kind, _ hint: String? = nil) -> StoreError {
            StoreError(
                kind, operation: operation, key: key, status: status, code: code, message: message,
                requestId: requestId, hint: hint)
        }
        let resource = key.map { "arn:aws:s3:::\(bucket)/\($0)" } ?? "arn:aws:s3:::\(bucket)"
        let who =
            accessKeyId.map { "access key \($0) (from \(credentialsSource))" }
            ?? "the credentials (from \(credentialsSource))"

        switch code {
        case "NoSuchBucket":
            return make(
                .noSuchBucket,
                "bucket \"\(bucket)\" does not exist at this endpoint: create it with "
                    + "`snapctl store mb s3://\(bucket)` or check the bucket name and endpoint")
        case "NoSuchKey", "NoSuchUpload", "NoSuchVersion":
            return make(.notFound)
        case "PreconditionFailed", "ConditionalRequestConflict":
            return make(.preconditionFailed, "another writer changed this object: read it again and retry")
        case "SignatureDoesNotMatch":
            return make(
                .invalidCredentials,
                "the signature was refused: check the secret access key of \(who); "
                    + "a wrong secret, a stray space or a proxy rewriting the request causes this")
        case "InvalidAccessKeyId":
            return make(
                .invalidCredentials,
                "the server does not know \(who): check the access key id and "
                    + "that it belongs to this endpoint/account")
        case "ExpiredToken", "TokenRefreshRequired", "InvalidToken":
            return make(
                .invalidCredentials,
                "the session token of \(who) is expired or invalid: refresh the "
                    + "temporary credentials")
        case "RequestTimeTooSkewed", "RequestExpired":
            let server = headers["date"].map { " (server time: \($0))" } ?? ""
            return make(
                .clockSkew,
                "this machine's clock differs too much from the server's\(server): sync the "
                    + "clock (NTP, e.g. `chronyc makestep` or `timedatectl set-ntp true`)")
        case "AccessDenied", "AllAccessDisabled", "AccountProblem":
            var hint = "\(who) may not do this: it needs \(S3Permission.forOperation(operation)) on \(resource)"
            if operation == "HeadObject" {
                hint += " (without s3:ListBucket a missing key also answers 403)"
            }
            return make(.accessDenied, hint)
        case "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException",
            "TemporaryRedirect":
            let actual = headers["x-amz-bucket-region"] ?? parsed?.region
            let hint =
                actual.map { "bucket \"\(bucket)\" is in region \($0), not \(region): set the region to \($0)" }
                ?? "bucket \"\(bucket)\" is in another region than \(region)"
                + (parsed?.endpoint.map { " (endpoint \($0))" } ?? "") + ": set the right region"
            return make(.wrongRegion, hint)
        case "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests":
            return make(.throttled, "the store is rate-limiting requests; they are retried with backoff")
        case "InternalError", "ServiceUnavailable", "RequestTimeout", "OperationAborted":
            return make(.transient)
        case "BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest", "IncompleteBody":
            return make(.integrity, "the body did not match its checksum on the way: retry the upload")
        case "InvalidRange":
            return make(.invalidRequest, "the range is outside the object")
        case "NotImplemented":
            return make(.unsupported, "this store does not implement \(operation)")
        case "BucketAlreadyExists":
            return make(
                .invalidRequest,
                "bucket names are global and \"\(bucket)\" belongs to someone else: "
                    + "choose another name")
        default:
            break
        }
        switch status {
        case 404:
            return make(.notFound)
        case 412:
            return make(.preconditionFailed, "another writer changed this object: read it again and retry")
        case 409 where conditional:
            return make(.preconditionFailed, "a concurrent write to this key conflicted: read it again and retry")
        case 301, 307, 308:
            let actual = headers["x-amz-bucket-region"]
            return make(
                .wrongRegion,
                actual.map { "bucket \"\(bucket)\" is in region \($0): set the region to \($0)" }
                    ?? "the bucket is in another region or needs another endpoint")
        case 400 where headers["x-amz-bucket-region"].map({ $0 != region }) == true:
            return make(
                .wrongRegion,
                "bucket \"\(bucket)\" is in region \(headers["x-amz-bucket-region"]!): "
                    + "set the region to it")
        case 401, 403:
            if body.isEmpty {
                return make(
                    .accessDenied,
                    "refused without details (a HEAD has no error body): check \(who) and "
                        + "that it has \(S3Permission.forOperation(operation)) on \(resource)")
            }
            return make(.accessDenied, "check \(who) and its permissions on \(resource)")
        case 429:
            return make(.throttled, "the store is rate-limiting requests; they are retried with backoff")
        case 503:
            return make(.throttled)
        case 501:
            return make(.unsupported, "this store does not implement \(operation)")
        case 500..<600:
            return make(.transient)
        default:
            return make(.invalidRequest)
        }
    }

    static func statusText(_ status: Int) -> String {
        switch status {
        case 400: return "Bad Request"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 409: return "Conflict"
        case 412: return "Precondition Failed"
        case 416: return "Range Not Satisfiable"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return "HTTP status \(status)"
        }
    }
}
