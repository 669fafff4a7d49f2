"""The push adapters against the vendors' documented signing examples and request/response shapes,
through httpx.MockTransport (no network): the exact signed request each one sends, and how each answer
is read (delivered, retry later, refused)."""
from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from api.services.notifications.channels import aliyun, tencent, wechat
from api.services.notifications.channels.base import Message

# Aliyun SMS documentation ("HTTP protocol and signature"), SendSms example: AccessKeyId testId,
# AccessKeySecret testSecret; published signature zJDF+Lrzhj/ThnlvIToysFRq6t4= (GET).
ALIYUN_DOC = {
    "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123", "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用", "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466", "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}', "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
ALIYUN_DOC_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123%26PhoneNumbers%3D15300000001"
    "%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF"
    "%25A1%25E6%25B5%258B%25E8%25AF%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1"
    "%26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode%3DSMS_71390007"
    "%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D%26Timestamp%3D2017-07-12T02%253A42%253A19Z"
    "%26Version%3D2017-05-25"
)

# Tencent Cloud API 3.0 "Signature v3" documentation example (CVM DescribeInstances, timestamp 1551113065,
# the documented key as printed): hashed payload, string to sign and signature as published.
TC3_PAYLOAD = '{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
TC3_KEY = "Gu5t9xGARNpq86cd98joQYCN3*******"

MESSAGE = Message(notification_id=42, topic="POINTS_EXPIRING", title="积分即将过期", body="100 积分将于 2026-12-31 过期",
                  phone="+8613800138000", openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")


def test_aliyun_signature_matches_the_documented_example():
    assert aliyun.string_to_sign("GET", ALIYUN_DOC) == ALIYUN_DOC_STRING_TO_SIGN
    assert aliyun.signature("GET", ALIYUN_DOC, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    # the RPC signature page's own example (DescribeRegions)
    regions = {"Format": "XML", "AccessKeyId": "testid", "Action": "DescribeRegions", "SignatureMethod": "HMAC-SHA1",
               "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "SignatureVersion": "1.0",
               "Version": "2014-05-26", "Timestamp": "2016-02-23T12:46:24Z"}
    assert aliyun.signature("GET", regions, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    assert aliyun.percent_encode("a b*~/") == "a%20b%2A~%2F"


def _aliyun(handler) -> aliyun.AliyunSms:
    return aliyun.AliyunSms("testId", "testSecret", "商场积分", "SMS_71390007",
                            client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
                            nonce=lambda: "45e25e9b-0a6f-4070-8c85-2956eda1b466",
                            clock=lambda: datetime(2017, 7, 12, 2, 42, 19, tzinfo=UTC))


async def test_aliyun_sends_the_exact_signed_request_and_reads_ok():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"Message": "OK", "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990",
                                         "BizId": "900619746936498440^0", "Code": "OK"})

    outcome = await _aliyun(handler).send(MESSAGE)
    assert outcome.ok and outcome.code == "OK" and outcome.reference == "900619746936498440^0"
    request = seen[0]
    assert request.method == "POST" and str(request.url) == "https://dysmsapi.aliyuncs.com/"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    sent = dict(parse_qsl(request.content.decode(), keep_blank_values=True))
    assert {k: v for k, v in sent.items() if k != "Signature"} == {
        "AccessKeyId": "testId", "Action": "SendSms", "Format": "JSON", "OutId": "42", "PhoneNumbers": "13800138000",
        "RegionId": "cn-hangzhou", "SignName": "商场积分", "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466", "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"title":"积分即将过期","body":"100 积分将于 2026-12-31 过期"}',
        "Timestamp": "2017-07-12T02:42:19Z", "Version": "2017-05-25",
    }
    # The signature is the documented HMAC-SHA1 over the POST string to sign of exactly these parameters.
    assert sent["Signature"] == aliyun.signature("POST", sent, "testSecret")
    assert sent["Signature"] == "RFVZymjcfuw3OccRLB/e51dZl7A="  # recorded: pins the whole canonical request


@pytest.mark.parametrize(("status", "body", "retry", "code"), [
    (200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控Permits:1"}, True, "isv.BUSINESS_LIMIT_CONTROL"),
    (200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号"}, False, "isv.MOBILE_NUMBER_ILLEGAL"),
    (200, {"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key is not found."}, False,
     "InvalidAccessKeyId.NotFound"),
    (503, {"Code": "ServiceUnavailable"}, True, "HTTP_503"),
])
async def test_aliyun_reads_refusals_and_faults(status, body, retry, code):
    outcome = await _aliyun(lambda request: httpx.Response(status, json=body)).send(MESSAGE)
    assert (outcome.ok, outcome.retry, outcome.code) == (False, retry, code)


async def test_aliyun_network_fault_is_retried_and_nothing_secret_is_logged(caplog):
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    adapter = _aliyun(handler)
    with caplog.at_level(logging.DEBUG):
        outcome = await adapter.send(MESSAGE)
    assert (outcome.ok, outcome.retry, outcome.code) == (False, True, "NETWORK:ConnectError")
    assert "testSecret" not in repr(adapter) and "13800138000" not in caplog.text and "testSecret" not in caplog.text


def test_tc3_signature_matches_the_documented_example():
    canonical = tencent.canonical_request("cvm.tencentcloudapi.com", TC3_PAYLOAD)
    assert canonical == ("POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\n"
                         "content-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")
    assert tencent.string_to_sign(1551113065, "cvm", canonical) == (
        "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031")
    assert tencent.signature(TC3_KEY, 1551113065, "cvm", canonical) == \
        "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"


def _tencent(handler) -> tencent.TencentSms:
    return tencent.TencentSms("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
                              "1400006666", "商场积分", "1234567",
                              client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
                              clock=lambda: 1551113065)


async def test_tencent_sends_the_exact_signed_request_and_reads_ok():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"Response": {"SendStatusSet": [{
            "SerialNo": "5000:1045710669157053657849499619", "PhoneNumber": "+8613800138000", "Fee": 1,
            "SessionContext": "42", "Code": "Ok", "Message": "send success", "IsoCode": "CN"}],
            "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279"}})

    outcome = await _tencent(handler).send(MESSAGE)
    assert outcome.ok and outcome.reference == "5000:1045710669157053657849499619"
    request = seen[0]
    assert request.method == "POST" and str(request.url) == "https://sms.tencentcloudapi.com/"
    body = request.content.decode()
    assert json.loads(body) == {"PhoneNumberSet": ["+8613800138000"], "SmsSdkAppId": "1400006666", "SignName": "商场积分",
                                "TemplateId": "1234567", "TemplateParamSet": [MESSAGE.title, MESSAGE.body],
                                "SessionContext": "42"}
    headers = request.headers
    assert (headers["x-tc-action"], headers["x-tc-version"], headers["x-tc-region"], headers["x-tc-timestamp"]) == (
        "SendSms", "2021-01-11", "ap-guangzhou", "1551113065")
    expected = tencent.signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", 1551113065, "sms",
                                 tencent.canonical_request("sms.tencentcloudapi.com", body))
    assert headers["authorization"] == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/sms/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={expected}")
    assert headers["content-type"] == "application/json; charset=utf-8" and headers["host"] == "sms.tencentcloudapi.com"


@pytest.mark.parametrize(("body", "retry", "code"), [
    ({"Response": {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "The provided credentials could not be "
                             "validated."}, "RequestId": "ed93f3cb-f35e-473f-b9f3-0d451b8b79c6"}}, False,
     "AuthFailure.SignatureFailure"),
    ({"Response": {"Error": {"Code": "RequestLimitExceeded", "Message": "请求的次数超过了频率限制。"},
                   "RequestId": "x"}}, True, "RequestLimitExceeded"),
    ({"Response": {"SendStatusSet": [{"SerialNo": "", "PhoneNumber": "+8613800138000", "Fee": 0, "SessionContext": "42",
                                      "Code": "LimitExceeded.PhoneNumberDailyLimit", "Message": "单个手机号日下发短信条数超过设定的上限",
                                      "IsoCode": "CN"}], "RequestId": "y"}}, False, "LimitExceeded.PhoneNumberDailyLimit"),
])
async def test_tencent_reads_refusals(body, retry, code):
    outcome = await _tencent(lambda request: httpx.Response(200, json=body)).send(MESSAGE)
    assert (outcome.ok, outcome.retry, outcome.code) == (False, retry, code)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_wechat_caches_the_access_token_until_it_expires():
    clock, tokens, sent = _Clock(), [], []

    def handler(request: httpx.Request) -> httpx.Response:
        url = urlsplit(str(request.url))
        query = dict(parse_qsl(url.query))
        if url.path == "/cgi-bin/token":
            tokens.append(query)
            return httpx.Response(200, json={"access_token": f"TOKEN{len(tokens)}", "expires_in": 7200})
        assert url.path == "/cgi-bin/message/subscribe/send"
        sent.append((query["access_token"], json.loads(request.content)))
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "msgid": 294402298110051942})

    adapter = wechat.WechatSubscribe("wx1234567890", "app-secret", "TEMPLATE_ID", "pages/inbox/index",
                                     client=httpx.AsyncClient(transport=httpx.MockTransport(handler)), clock=clock)
    assert (await adapter.send(MESSAGE)).ok
    assert (await adapter.send(MESSAGE)).ok
    assert tokens == [{"grant_type": "client_credential", "appid": "wx1234567890", "secret": "app-secret"}]
    assert sent[0] == ("TOKEN1", {
        "touser": MESSAGE.openid, "template_id": "TEMPLATE_ID", "page": "pages/inbox/index",
        "data": {"thing1": {"value": "积分即将过期"}, "thing2": {"value": "100 积分将于 2026-12-31"}},  # 20 characters at most
        "miniprogram_state": "formal", "lang": "zh_CN"})
    clock.now += 7200 - wechat.SAFETY_SECONDS  # the cached token is close to its expiry: fetched again
    assert (await adapter.send(MESSAGE)).ok
    assert len(tokens) == 2 and sent[-1][0] == "TOKEN2"
    assert "app-secret" not in repr(adapter) and "TOKEN" not in repr(adapter)


async def test_wechat_refreshes_a_rejected_token_once_and_reads_refusals():
    calls = {"token": 0}
    answers = [{"errcode": 40001, "errmsg": "invalid credential"}, {"errcode": 43101, "errmsg": "user refuse to accept the msg"}]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/token":
            calls["token"] += 1
            return httpx.Response(200, json={"access_token": f"T{calls['token']}", "expires_in": 7200})
        return httpx.Response(200, json=answers.pop(0))

    adapter = wechat.WechatSubscribe("wx1", "s", "TPL", client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    outcome = await adapter.send(MESSAGE)
    assert calls["token"] == 2  # the rejected token was replaced at once
    assert (outcome.ok, outcome.retry, outcome.code) == (False, False, "43101")  # the member has not subscribed
    no_openid = await adapter.send(Message(1, "CAMPAIGN", "t", "b", openid=None))
    assert (no_openid.ok, no_openid.code) == (False, "NO_OPENID")
