"""The official DingTalk Stream SDK (PyPI dingtalk-stream), unmodified,
against the simulator's gateway: prints one JSON line per event it gets and
acks it as the SDK does. Input (argv[1]): {"api_base_url", "client_id", "client_secret"}."""
import asyncio
import json
import sys

import dingtalk_stream
from dingtalk_stream import AckMessage

cfg = json.loads(sys.argv[1])


class Printer(dingtalk_stream.EventHandler):
    async def process(self, event):
        line = {
            "eventId": event.headers.event_id,
            "eventType": event.headers.event_type,
            "corpId": event.headers.event_corp_id,
            "data": event.data,
        }
        print(json.dumps(line), flush=True)
        return AckMessage.STATUS_OK, "OK"


dingtalk_stream.DingTalkStreamClient.OPEN_CONNECTION_API = (
    cfg["api_base_url"] + "/v1.0/gateway/connections/open"
)
client = dingtalk_stream.DingTalkStreamClient(
    dingtalk_stream.Credential(cfg["client_id"], cfg["client_secret"])
)
client.register_all_event_handler(Printer())
asyncio.run(client.start())
