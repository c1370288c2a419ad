"""tools.deploy_site against moto S3 + CloudFront (stack outputs through a botocore Stubber)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.aws_env import REGION, fake_aws_environment
from tools import deploy_site
from tools.deploy_site import DeployError, SiteTarget, deploy, main, stack_target

pytestmark = pytest.mark.integration

API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A bucket with a stale object and a CloudFront distribution, on moto."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name, value in fake_aws_environment().items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="site-bucket")
        s3.put_object(Bucket="site-bucket", Key="old/removed-page.html", Body=b"<p>gone</p>")
        s3.put_object(Bucket="site-bucket", Key="dashboard.html", Body=b"<p>previous version</p>")
        distribution = boto3.client("cloudfront", region_name=REGION).create_distribution(
            DistributionConfig={
                "CallerReference": "test-site",
                "Comment": "site",
                "Enabled": True,
                "DefaultRootObject": "dashboard.html",
                "Origins": {
                    "Quantity": 1,
                    "Items": [
                        {
                            "Id": "site",
                            "DomainName": "site-bucket.s3.us-east-1.amazonaws.com",
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                        }
                    ],
                },
                "DefaultCacheBehavior": {
                    "TargetOriginId": "site",
                    "ViewerProtocolPolicy": "redirect-to-https",
                    "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6",
                },
            }
        )["Distribution"]
        yield {"bucket": "site-bucket", "distribution_id": distribution["Id"], "domain": distribution["DomainName"]}


def _publish(aws: dict[str, str], api_url: str, region: str) -> int:
    """Run the command line with an explicit target (no stack lookup)."""
    args = ["--bucket", aws["bucket"], "--distribution-id", aws["distribution_id"], "--api-url", api_url]
    return main([*args, "--region", region])


def _objects(bucket: str) -> dict[str, dict[str, Any]]:
    s3 = boto3.client("s3", region_name=REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: s3.head_object(Bucket=bucket, Key=k) for k in keys}


def _site_keys() -> set[str]:
    return {key for key, _ in deploy_site.site_files(deploy_site.SITE_DIR)}


def test_publishing_uploads_every_page_with_its_content_type_and_cache_policy(aws: dict[str, str]) -> None:
    code = _publish(aws, API_URL, REGION)

    assert code == 0
    objects = _objects(aws["bucket"])
    assert set(objects) == _site_keys() | {"config.json"}
    expected = {
        "dashboard.html": ("text/html; charset=utf-8", "no-cache"),
        "chat.html": ("text/html; charset=utf-8", "no-cache"),
        "js/dashboard.js": ("text/javascript; charset=utf-8", "no-cache"),
        "css/site.css": ("text/css; charset=utf-8", "no-cache"),
        "config.json": ("application/json", "no-cache"),
        "favicon.svg": ("image/svg+xml", "public, max-age=86400"),
        "vendor/aws4fetch.esm.mjs": ("text/javascript; charset=utf-8", "public, max-age=31536000, immutable"),
        "vendor/uPlot.esm.js": ("text/javascript; charset=utf-8", "public, max-age=31536000, immutable"),
        "vendor/uPlot.min.css": ("text/css; charset=utf-8", "public, max-age=31536000, immutable"),
        "vendor/aws4fetch.LICENSE": ("text/plain; charset=utf-8", "public, max-age=31536000, immutable"),
    }
    for key, (content_type, cache) in expected.items():
        assert (objects[key]["ContentType"], objects[key]["CacheControl"]) == (content_type, cache), key


def test_published_pages_are_byte_identical_to_the_repository(aws: dict[str, str]) -> None:
    target = SiteTarget(aws["bucket"], aws["distribution_id"], API_URL, REGION)
    deploy(boto3.client("s3"), boto3.client("cloudfront"), target, ["smart-cheap-router"], out=io.StringIO())

    s3 = boto3.client("s3", region_name=REGION)
    for key, path in deploy_site.site_files(deploy_site.SITE_DIR):
        assert s3.get_object(Bucket=aws["bucket"], Key=key)["Body"].read() == path.read_bytes(), key


def test_config_json_tells_the_pages_the_api_url_region_and_routers(aws: dict[str, str]) -> None:
    code = _publish(aws, "https://abc123.execute-api.eu-west-1.amazonaws.com", "eu-west-1")

    assert code == 0
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=aws["bucket"], Key="config.json")["Body"].read()
    assert json.loads(body) == {
        "apiUrl": "https://abc123.execute-api.eu-west-1.amazonaws.com/",
        "region": "eu-west-1",
        "routers": ["smart-cheap-router"],
    }


def test_objects_no_longer_in_the_site_are_deleted_and_current_ones_replaced(aws: dict[str, str]) -> None:
    target = SiteTarget(aws["bucket"], aws["distribution_id"], API_URL, REGION)
    report = deploy(boto3.client("s3"), boto3.client("cloudfront"), target, ["r"], out=io.StringIO())

    assert report.deleted == ["old/removed-page.html"]
    objects = _objects(aws["bucket"])
    assert "old/removed-page.html" not in objects
    body = boto3.client("s3").get_object(Bucket=aws["bucket"], Key="dashboard.html")["Body"].read()
    assert b"previous version" not in body


def test_a_cloudfront_invalidation_for_everything_is_created(aws: dict[str, str]) -> None:
    target = SiteTarget(aws["bucket"], aws["distribution_id"], API_URL, REGION)
    report = deploy(boto3.client("s3"), boto3.client("cloudfront"), target, ["r"], out=io.StringIO())

    cloudfront = boto3.client("cloudfront", region_name=REGION)
    invalidation = cloudfront.get_invalidation(DistributionId=aws["distribution_id"], Id=str(report.invalidation_id))
    assert invalidation["Invalidation"]["InvalidationBatch"]["Paths"]["Items"] == ["/*"]
    assert report.site_domain == aws["domain"]


def test_hidden_files_and_a_local_config_json_are_not_published(aws: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "dashboard.html").write_text("<p>dash</p>")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "config.json").write_text('{"apiUrl": "http://127.0.0.1:3000/"}')
    target = SiteTarget(aws["bucket"], aws["distribution_id"], API_URL, REGION)

    deploy(boto3.client("s3"), boto3.client("cloudfront"), target, ["r"], tmp_path, out=io.StringIO())

    objects = _objects(aws["bucket"])
    assert set(objects) == {"dashboard.html", "config.json"}
    body = boto3.client("s3").get_object(Bucket=aws["bucket"], Key="config.json")["Body"].read()
    assert json.loads(body)["apiUrl"] == API_URL


def _cloudformation_answering(response: dict[str, Any] | None, error: str | None = None) -> Any:
    client = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(client)
    if error:
        stubber.add_client_error("describe_stacks", service_error_code="ValidationError", service_message=error)
    else:
        stubber.add_response("describe_stacks", response, {"StackName": "router"})
    stubber.activate()
    return client


def _stack(outputs: dict[str, str]) -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackName": "router",
                "CreationTime": "2026-11-26T00:00:00Z",
                "StackStatus": "CREATE_COMPLETE",
                "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
            }
        ]
    }


def test_the_stack_outputs_name_the_bucket_distribution_and_api() -> None:
    client = _cloudformation_answering(
        _stack(
            {
                "SiteBucket": "site-bucket",
                "SiteDistributionId": "E123",
                "ApiUrl": "https://abc123.execute-api.us-east-1.amazonaws.com",
                "TableName": "t",
            }
        )
    )

    target = stack_target(client, "router", REGION)

    assert target == SiteTarget("site-bucket", "E123", API_URL, REGION)


def test_a_stack_with_a_streaming_base_url_gives_the_chat_page_that_url() -> None:
    client = _cloudformation_answering(
        _stack(
            {
                "SiteBucket": "site-bucket",
                "SiteDistributionId": "E123",
                "ApiUrl": "https://abc123.execute-api.us-east-1.amazonaws.com",
                "BaseUrl": "https://d111.cloudfront.net/v1",
            }
        )
    )

    target = stack_target(client, "router", REGION)

    assert target == SiteTarget("site-bucket", "E123", API_URL, REGION, chat_api_url="https://d111.cloudfront.net/")
    config = json.loads(deploy_site.site_config(target, ["smart-cheap-router"]))
    assert config["chatApiUrl"] == "https://d111.cloudfront.net/" and config["apiUrl"] == API_URL


def test_a_missing_stack_is_a_clear_error() -> None:
    client = _cloudformation_answering(None, error="Stack with id router does not exist")

    with pytest.raises(DeployError, match=r"stack 'router' does not exist in us-east-1: deploy it first"):
        stack_target(client, "router", REGION)


def test_a_stack_without_the_site_outputs_is_a_clear_error() -> None:
    client = _cloudformation_answering(_stack({"ApiUrl": API_URL, "TableName": "t"}))

    with pytest.raises(
        DeployError, match=r"no output SiteBucket, SiteDistributionId; outputs present: ApiUrl, TableName"
    ):
        stack_target(client, "router", REGION)


def test_the_command_line_reports_a_missing_stack_with_exit_code_2(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process moto has no CloudFormation backend here, so the stack lookup is stubbed at the client.
    client = _cloudformation_answering(None, error="Stack with id router does not exist")
    original = boto3.session.Session.client

    def client_for(self: boto3.session.Session, service: str, *args: Any, **kwargs: Any) -> Any:
        return client if service == "cloudformation" else original(self, service, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(boto3.session.Session, "client", client_for)
        code = main(["--stack", "router", "--region", REGION])

    assert code == 2
    assert "stack 'router' does not exist in us-east-1" in capsys.readouterr().err
    assert "dashboard.html" in _objects(aws["bucket"])  # nothing was touched
    assert "old/removed-page.html" in _objects(aws["bucket"])


def test_mixing_stack_and_explicit_targets_is_refused() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--stack", "router", "--bucket", "b", "--distribution-id", "d", "--api-url", API_URL])
    assert exited.value.code == 2


def test_an_api_url_that_is_not_http_is_refused(aws: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--bucket", aws["bucket"], "--distribution-id", aws["distribution_id"], "--api-url", "abc123"])

    assert code == 2
    assert "--api-url must be an http(s) URL" in capsys.readouterr().err
