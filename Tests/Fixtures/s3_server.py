#!/usr/bin/env python3
"""A real S3-compatible server for Lifeboat's tests: moto, on loopback, with SigV4 checking on.

moto checks signatures only after INITIAL_NO_AUTH_ACTION_COUNT unauthenticated requests; this
script spends them creating an IAM user with full access and an access key for it (and a
read-only user, for AccessDenied), then every request must be signed with one of those keys.
It prints one JSON line on stdout:

    {"endpoint": "http://127.0.0.1:PORT", "region": "us-east-1",
     "access_key_id": "...", "secret_access_key": "...",
     "reader_access_key_id": "...", "reader_secret_access_key": "..."}

and serves until its standard input closes (so it never outlives the test process that
started it), then stops.

    s3_server.py [--bucket NAME]...
"""
import argparse
import json
import logging
import os
import socket
import sys

# The IAM calls below are the unauthenticated ones; everything after must be signed.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "6"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bootstrap")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bootstrap")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# The machines set AWS_CA_BUNDLE for HTTPS; this server is plain HTTP on loopback.
os.environ.pop("AWS_CA_BUNDLE", None)

import boto3  # noqa: E402
from moto.core.authorization import ActionAuthenticatorMixin  # noqa: E402
from moto.core.responses import BaseResponse  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402


def verify_signatures_over_the_raw_url():
    """moto checks a signature against werkzeug's `request.url`, in which percent-encoded
    characters are decoded (`prefix=a%2F` arrives as `prefix=a/`, a key `a%2Bb` as `a+b`), so
    every correctly signed request with such characters in its path or query fails with
    SignatureDoesNotMatch — boto3's too. AWS canonicalises the path and query as they were
    sent; so does this patch, by giving moto's signature check (and only it) the request
    line's own URL. The check stays exact; it is not loosened."""
    original_setup = BaseResponse.setup_class
    original_authenticate = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def setup_class(self, request, full_url, headers, use_raw_body=False):
        original_setup(self, request, full_url, headers, use_raw_body)
        environ = getattr(request, "environ", None) or {}
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        self._raw_uri_for_signature = "/".join(full_url.split("/", 3)[:3]) + raw if raw else None

    def authenticate(self, iam_request_cls, resource="*"):
        raw = getattr(self, "_raw_uri_for_signature", None)
        if raw is None:
            return original_authenticate(self, iam_request_cls, resource)
        decoded, self.uri = self.uri, raw
        try:
            return original_authenticate(self, iam_request_cls, resource)
        finally:
            self.uri = decoded

    BaseResponse.setup_class = setup_class
    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate


def list_when_multipart_uploads_began():
    """moto lists every multipart upload as initiated at 2010-11-10T20:48:33Z. S3 lists when
    CreateMultipartUpload ran (to the millisecond), and Lifeboat's prune decides by it whether
    an upload under the WAL archive (which wal-push writes without a lock) is old enough to be
    a killed push's; so this patch stamps each upload when moto creates it and lists that time
    instead (in the XML itself: moto's serialiser would drop the milliseconds)."""
    import re
    from datetime import datetime, timezone
    from moto.s3.models import FakeMultipart
    from moto.s3.responses import S3Response

    original_init = FakeMultipart.__init__
    original_list = S3Response.list_multipart_uploads

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.lifeboat_initiated = datetime.now(timezone.utc)

    def list_multipart_uploads(self):
        status, headers, body = original_list(self)
        multiparts = self.backend.list_multipart_uploads(self.bucket_name)
        text = body.decode() if isinstance(body, bytes) else body

        def stamp(match):
            upload = match.group(0)
            found = re.search(r"<UploadId>([^<]*)</UploadId>", upload)
            initiated = getattr(multiparts.get(found.group(1)) if found else None, "lifeboat_initiated", None)
            if initiated is None:
                return upload
            when = initiated.strftime("%Y-%m-%dT%H:%M:%S.") + f"{initiated.microsecond // 1000:03d}Z"
            return re.sub(r"<Initiated>[^<]*</Initiated>", f"<Initiated>{when}</Initiated>", upload)

        text = re.sub(r"<Upload>.*?</Upload>", stamp, text, flags=re.S)
        return status, headers, text.encode() if isinstance(body, bytes) else text

    FakeMultipart.__init__ = init
    S3Response.list_multipart_uploads = list_multipart_uploads


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bucket", action="append", default=[])
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on stderr
    verify_signatures_over_the_raw_url()
    list_when_multipart_uploads_began()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    region = "us-east-1"

    iam = boto3.client("iam", endpoint_url=endpoint, region_name=region)
    iam.create_user(UserName="lifeboat")
    iam.put_user_policy(
        UserName="lifeboat", PolicyName="everything",
        PolicyDocument=json.dumps({"Version": "2012-10-17",
                                   "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="lifeboat")["AccessKey"]
    # A second user that may only read, for AccessDenied.
    iam.create_user(UserName="reader")
    iam.put_user_policy(
        UserName="reader", PolicyName="read-only",
        PolicyDocument=json.dumps({"Version": "2012-10-17",
                                   "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"],
                                                  "Resource": "*"}]}))
    reader = iam.create_access_key(UserName="reader")["AccessKey"]

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                      aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    for bucket in args.bucket:
        s3.create_bucket(Bucket=bucket)

    print(json.dumps({"endpoint": endpoint, "region": region, "access_key_id": key["AccessKeyId"],
                      "secret_access_key": key["SecretAccessKey"],
                      "reader_access_key_id": reader["AccessKeyId"],
                      "reader_secret_access_key": reader["SecretAccessKey"]}), flush=True)
    sys.stdin.read()  # until the test closes our stdin, or exits
    server.stop()


if __name__ == "__main__":
    main()
