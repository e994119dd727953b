#!/usr/bin/env python3
"""The demo's bucket data: fills the platform's buckets, fingerprints them, and deletes objects
(the disaster). The S3 key comes from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.

    platform_data.py --endpoint URL fill        BUCKET...   a few objects in each bucket
    platform_data.py --endpoint URL fingerprint BUCKET...   one line per object: bucket, key, size, SHA-256
    platform_data.py --endpoint URL delete      BUCKET[:N]... every object (or every Nth) of each bucket
"""
import argparse
import hashlib
import json
import sys

import boto3


def objects(s3, bucket):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            yield item["Key"]


def fill(s3, buckets):
    for bucket in buckets:
        for i in range(12):
            key = f"{bucket}/item-{i:03}.json" if i % 3 else f"archive/{i:03}/blob.bin"
            body = (json.dumps({"bucket": bucket, "item": i, "text": "x" * (i * 1000)}).encode()
                    if i % 3 else bytes((j * 7 + i) % 256 for j in range(64 * 1024 + i)))
            s3.put_object(Bucket=bucket, Key=key, Body=body,
                          ContentType="application/json" if i % 3 else "application/octet-stream",
                          Metadata={"item": str(i)})


def fingerprint(s3, buckets):
    for bucket in buckets:
        for key in sorted(objects(s3, bucket)):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            print(f"{bucket} {key} {len(body)} {hashlib.sha256(body).hexdigest()}")


def delete(s3, specs):
    for spec in specs:
        bucket, _, every = spec.partition(":")
        keys = sorted(objects(s3, bucket))[::int(every or 1)]
        for key in keys:
            s3.delete_object(Bucket=bucket, Key=key)
        print(f"deleted {len(keys)} objects of {bucket}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("action", choices=["fill", "fingerprint", "delete"])
    parser.add_argument("buckets", nargs="+")
    args = parser.parse_args()
    s3 = boto3.client("s3", endpoint_url=args.endpoint, region_name=args.region)
    {"fill": fill, "fingerprint": fingerprint, "delete": delete}[args.action](s3, args.buckets)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
