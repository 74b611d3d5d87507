"""The image store on S3-compatible object storage (moto's server on loopback, reached through the
same s3fs client and AWS variables a user sets): layout, cache index, hostile URLs and keys, a
refused upload that leaves nothing visible, the ledger URL rule, and the hub serving from it."""

import hashlib
import io
import uuid

import httpx
import pytest
from PIL import Image

from asset_pipeline.errors import ConfigurationError, UnsafePathError
from asset_pipeline.hub.server import HubConfig, build_hub_app
from asset_pipeline.hub.state import HubState
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.settings import PipelineSettings
from asset_pipeline.storage.data_dir import check_data_dir
from asset_pipeline.storage.object_store import check_object_url, inside_prefix, object_root
from asset_pipeline_testing.s3 import running_moto_s3
from asset_pipeline_testing.serving import free_port, serving

VARIABLE = "ASSET_PIPELINE_DATA_DIR"


@pytest.fixture(scope="module")
def s3():
    with running_moto_s3() as server:
        yield server


@pytest.fixture
def bucket(s3, monkeypatch):
    for name, value in s3.aws_environment().items():
        monkeypatch.setenv(name, value)
    name = f"img-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(name)
    s3.refuse_puts.clear()
    return name


def png(color=(10, 20, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, format="PNG")
    return out.getvalue()


def test_put_find_and_layout(s3, bucket):
    store = ImageStore(root=f"s3://{bucket}/site/v1")
    data = png()
    sha = hashlib.sha256(data).hexdigest()
    stored = store.put(data, partition_key="icon-001", request_hash="a" * 64, record={"cost_usd": 0.0})
    assert str(stored.path) == f"s3://{bucket}/site/v1/images/icon-001.png"
    assert s3.keys(bucket) == ["site/v1/images/icon-001.png", f"site/v1/objects/{sha[:2]}/{sha}.png",
                               f"site/v1/requests/{'a' * 64}.json"]
    assert store.contains("a" * 64) and not store.contains("b" * 64)
    found = store.find("a" * 64, partition_key="icon-002")  # the same image made current for another key
    assert found is not None and found.sha256 == sha
    assert store.read_partition("icon-002") == data


def test_a_damaged_object_is_a_miss(s3, bucket):
    store = ImageStore(root=f"s3://{bucket}/p")
    stored = store.put(png(), partition_key="icon-001", request_hash="c" * 64, record={})
    s3.client().put_object(Bucket=bucket, Key=f"p/objects/{stored.sha256[:2]}/{stored.sha256}.png", Body=b"garbage")
    assert store.find("c" * 64, partition_key="icon-001") is None


def test_a_refused_upload_leaves_nothing_visible(s3, bucket):
    store = ImageStore(root=f"s3://{bucket}/p")
    s3.refuse_puts.append("/objects/")
    with pytest.raises(PermissionError):
        store.put(png(), partition_key="icon-001", request_hash="d" * 64, record={})
    assert s3.keys(bucket) == [] and s3.refused >= 1
    s3.refuse_puts[:] = ["/images/"]  # the object lands, the partition's key does not: no index entry either
    with pytest.raises(PermissionError):
        store.put(png(), partition_key="icon-001", request_hash="d" * 64, record={})
    assert not any("/images/" in key or "/requests/" in key for key in s3.keys(bucket))
    assert store.find("d" * 64, partition_key="icon-001") is None and not store.contains("d" * 64)


@pytest.mark.parametrize("relative", ["../escape.png", "images/../../x", "/etc/passwd", "a//b", "./a", "a\\..\\b", ""])
def test_hostile_relative_keys_are_refused(relative):
    with pytest.raises(UnsafePathError):
        inside_prefix(object_root("s3://bucket/prefix", variable=VARIABLE), relative)


@pytest.mark.parametrize("key", ["../../other", "icon/../../x", "A B", "", "x" * 300])
def test_hostile_partition_keys_are_refused(bucket, key):
    store = ImageStore(root=f"s3://{bucket}/p")
    with pytest.raises(UnsafePathError):
        store.put(png(), partition_key=key, request_hash="e" * 64, record={})


@pytest.mark.parametrize(("url", "reason"), [
    ("s3://bucket/../other", "'..' is not allowed"),
    ("s3://bucket/a//b", "'' is not allowed"),
    ("s3://bucket/a/./b", "'.' is not allowed"),
    ("s3://AKIAEXAMPLE:supersecret@bucket/p", "credentials do not belong"),
    ("s3://bucket/p?versionId=1", "no query"),
    ("s3://bu/p", "not a valid bucket"),
    ("s3://bucket/p%2F..%2Fq", "not allowed"),
    ("gs://bucket/p", "unsupported scheme"),
])
def test_hostile_store_urls_are_refused_naming_the_variable(url, reason):
    with pytest.raises(ConfigurationError) as caught:
        check_object_url(url, variable=VARIABLE)
    message = str(caught.value)
    assert message.startswith(VARIABLE) and reason in message and "supersecret" not in message


def test_an_unwritable_bucket_is_refused_at_setup(s3, monkeypatch):
    for name, value in s3.aws_environment().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        check_data_dir(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/p")
    assert "is not writable (" in str(caught.value) and "testing-secret" not in str(caught.value)


def test_the_ledger_url_is_required_with_an_s3_data_dir(monkeypatch):
    monkeypatch.delenv("ASSET_PIPELINE_DATABASE_URL", raising=False)
    settings = PipelineSettings(data_dir="s3://bucket/p")
    with pytest.raises(ConfigurationError, match="ASSET_PIPELINE_DATABASE_URL: required when ASSET_PIPELINE_DATA_DIR"):
        _ = settings.ledger_url
    assert PipelineSettings(data_dir="s3://bucket/p", database_url="sqlite:////tmp/x.db").ledger_url


def test_the_hub_serves_images_from_the_object_store(bucket):
    store = ImageStore(root=f"s3://{bucket}/p")
    data = png((200, 10, 10))
    store.put(data, partition_key="hero-001", request_hash="f" * 64, record={})
    port = free_port()
    app = build_hub_app(HubConfig(image_root=store.root_path), HubState())
    with serving(app, port=port):
        base = f"http://127.0.0.1:{port}"
        answer = httpx.get(f"{base}/images/hero-001")
        assert answer.status_code == 200 and answer.content == data
        assert answer.headers["content-type"] == "image/png"
        assert httpx.get(f"{base}/images/hero-404").status_code == 404
        assert httpx.get(f"{base}/images/..%2F..%2Fetc").status_code == 404
