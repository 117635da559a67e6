"""The Telegram channel (python-telegram-bot 22): updates in, the core's replies out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, Protocol

from telegram import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatAction, MessageLimit
from telegram.error import Forbidden, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from actions.context import MAIN_MENU
from actions.dialogue import user_tag
from actions.types import Button, Contact, Reply, Turn
from bot import metrics
from bot.app import Assistant, TurnFailed
from bot.polling import DurablePoller
from bot.render import split_text
from bot.telegram_sender import TelegramSender
from outbox import store
from outbox.worker import PROCESS_PAUSE, Worker, WorkerConfig

log = logging.getLogger(__name__)

CHANNEL = "telegram"
CALLBACK_DATA_LIMIT = 64  # bytes, Telegram's limit for callback_data
TEXT_LIMIT = int(MessageLimit.MAX_TEXT_LENGTH)  # 4096 UTF-16 code units per message

# Shown in the "/" menu of private chats.
COMMANDS = [
    ("start", "Mulai dan lihat menu"),
    ("menu", "Menu utama"),
    ("cek", "Cek kelayakan Prokus"),
    ("daftar", "Daftar Prokus"),
    ("status", "Status pendaftaran"),
    ("jadwal", "Jadwal pendampingan"),
    ("pendamping", "Kontak pendamping"),
    ("bantuan", "Cara memakai asisten"),
    ("petugas", "Bicara dengan petugas"),
    ("data_saya", "Lihat data saya yang tersimpan"),
    ("hapus_data", "Hapus data saya"),
    ("batal", "Hentikan proses yang sedang berjalan"),
]
# Added to the menu in each mentor's own chat (BotCommandScopeChat).
MENTOR_COMMANDS = [
    ("jadwal_baru", "Buat jadwal pendampingan"),
    ("jadwal_saya", "Jadwal yang akan datang"),
    ("ubah_jadwal", "Ubah jadwal"),
    ("batal_jadwal", "Batalkan jadwal"),
    ("peserta", "Peserta dampingan"),
    ("kirim", "Kirim pesan ke semua peserta"),
]
MENTOR_SYNC_SECONDS = 60
STALLED_RETRY_SECONDS = 5.0  # a stored update whose turn failed is tried again this often
# "typing..." only for a turn still running after this long: most replies come sooner.
TYPING_DELAY_SECONDS = 0.5


class UpdateGate(Protocol):
    """Runs one user's update under the process's per-user lock (bot.webhook.InboxGate:
    a lock across processes, earlier stored updates first, redeliveries skipped)."""

    async def run(self, update: Update, coroutine: Awaitable[Any]) -> None: ...


class PerUserUpdateProcessor(BaseUpdateProcessor):
    """Handle different users concurrently, but each user's updates one at a time, in order.
    With a `gate` (webhook mode), each update also passes it inside the per-user lock."""

    def __init__(self, max_concurrent_updates: int = 64, gate: UpdateGate | None = None) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, tuple[asyncio.Lock, list[int]]] = {}
        self.gate = gate

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        user = update.effective_user if isinstance(update, Update) else None
        if user is None:
            await coroutine
            return
        lock, users = self._locks.setdefault(user.id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                if self.gate is None:
                    await coroutine
                else:
                    await self.gate.run(update, coroutine)
        finally:
            users[0] -= 1
            if users[0] == 0:  # nobody waiting: forget the lock
                self._locks.pop(user.id, None)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


def keyboard(reply: Reply, contact_label: str) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | None:
    """Render a reply's buttons: inline buttons, or a one-time "share contact" keyboard."""
    if reply.ask_contact:
        rows = [[KeyboardButton(contact_label, request_contact=True)]]
        rows += [[KeyboardButton(b.label)] for b in reply.buttons]
        return ReplyKeyboardMarkup(rows, one_time_keyboard=True, resize_keyboard=True)
    if not reply.buttons:
        return None
    for button in reply.buttons:
        if len(button.payload.encode()) > CALLBACK_DATA_LIMIT:
            raise ValueError(f"callback data too long: {button.payload!r}")
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.payload)] for b in reply.buttons]
    )


def addressed_to_other_bot(text: str | None, username: str | None) -> bool:
    """Whether `text` is a command addressed to another bot (`/daftar@OtherBot`)."""
    if not text or not text.startswith("/") or not username:
        return False
    _, at, target = text.split(maxsplit=1)[0].partition("@")
    return bool(at) and target.casefold() != username.casefold()


class TelegramChannel:
    """Callbacks that turn updates into Turns and send the core's replies back."""

    def __init__(self, assistant: Assistant, delivery: Worker,
                 typing_delay: float = TYPING_DELAY_SECONDS) -> None:
        self.assistant = assistant
        self.delivery = delivery  # sends a user's replies from the outbox right away
        self.typing_delay = typing_delay
        self.texts = assistant.dialogue.texts
        # Updates whose turn marked them handled (or queued the apology) in the inbox.
        self._through_core: set[int] = set()

    @staticmethod
    def _record(turn: Turn, kind: str | None = None) -> metrics.TurnRecord:
        """The turn's record (correlation id, timings) for its log line and the metrics."""
        if kind is None:
            kind = ("button" if turn.payload is not None else "contact" if turn.contact
                    else "media" if turn.unsupported else
                    "command" if (turn.text or "").startswith("/") else "text")
        return metrics.TurnRecord(channel=CHANNEL, kind=kind, update_id=turn.update_id,
                                  user=user_tag(turn), arrived=metrics.arrival(turn.update_id))

    async def _respond(self, update: Update, context: ContextTypes.DEFAULT_TYPE, turn: Turn):
        """Run the turn (its replies are queued in its transaction), then send them; one
        log line and the metrics for the turn at the end."""
        record = self._record(turn)
        with metrics.turn_scope(record):
            chat_id = update.effective_chat.id
            typing = asyncio.create_task(self._keep_typing(context, chat_id,
                                                           self.typing_delay))
            try:
                replies = await self._handle(context, chat_id, turn, typing)
            except TurnFailed:  # stopping while the database is away: replayed at next start
                self._through_core.add(update.update_id)  # (so it is not marked handled)
                record.finish("error")
                return
            except BaseException:
                record.finish("error")
                raise
            finally:
                typing.cancel()
            if turn.update_id is not None:
                self._through_core.add(turn.update_id)
            record.replies = len(replies)
            await self._flush(turn, record)
            record.finish(metrics.outcome_of(record, replies, self.texts("internal_error")))

    async def _flush(self, turn: Turn, record: metrics.TurnRecord | None = None) -> None:
        """Send the user's queued replies now; what fails here is sent by the workers."""
        try:
            await self.delivery.deliver(
                CHANNEL, turn.user_id,
                first_sent=record.first_reply_sent if record is not None else None,
                rows=list(record.outbox_ids) if record is not None else None)
        except Exception:
            log.exception("fast reply delivery failed; the outbox worker will send")

    async def _say(self, update: Update, context: ContextTypes.DEFAULT_TYPE,
                   replies: list[Reply], kind: str) -> None:
        """Replies that need no turn, through the outbox like any other; sent directly
        (plain) only when the database is away."""
        turn = self._turn(update)
        record = self._record(turn, kind)
        record.replies = len(replies)
        with metrics.turn_scope(record):
            try:
                await asyncio.to_thread(self.assistant.say, turn, replies)
            except Exception:
                log.warning("outbox unavailable; replying directly")
                try:
                    await self.send(context, update.effective_chat.id, replies)
                finally:
                    record.finish("error")
                return
            self._through_core.add(update.update_id)
            await self._flush(turn, record)
            record.finish("ok")

    async def _handle(self, context: ContextTypes.DEFAULT_TYPE, chat_id: int, turn: Turn,
                      typing: asyncio.Task) -> list[Reply]:
        """The core's replies. While the database stays away, the stored update waits here
        after one notice to the user (their later updates queue behind it, in order); if
        the bot stops meanwhile, it is replayed from the inbox at the next start."""
        told = False
        while True:
            try:
                return await self.assistant.handle_async(turn)
            except TurnFailed:
                if not context.application.running:
                    raise  # stopping: the update stays in the inbox for the next start
                if not told:
                    told = True
                    typing.cancel()
                    with contextlib.suppress(TelegramError):
                        await context.bot.send_message(chat_id, self.texts("turn_delayed"))
                await asyncio.sleep(STALLED_RETRY_SECONDS)

    async def on_done(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Mark an update handled in the inbox after every handler ran, unless its turn
        did, so updates that never reach the core are not replayed."""
        if isinstance(update, Update):
            metrics.arrival(update.update_id)  # (forget it: updates that ran no turn)
            if update.update_id in self._through_core:
                self._through_core.discard(update.update_id)
                return
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.assistant.mark_handled, update.update_id)

    @staticmethod
    async def _keep_typing(context: ContextTypes.DEFAULT_TYPE, chat_id: int,
                           delay: float = 0.0) -> None:
        """Show "typing..." while the core works (Telegram shows it for about 5 s), once the
        turn has taken `delay` seconds: a quick reply needs none (one API call saved per
        turn)."""
        with contextlib.suppress(TelegramError, asyncio.CancelledError):
            await asyncio.sleep(delay)
            while True:
                await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
                await asyncio.sleep(4.5)

    async def send(self, context: ContextTypes.DEFAULT_TYPE, chat_id: int, replies: list[Reply]):
        """Send replies directly (group chats, and when the database is away), a long one in
        several messages with its buttons on the last; a user who blocked the bot is logged,
        not retried."""
        for reply in replies:
            try:
                markup = keyboard(reply, self.texts("share_contact_button"))
                *first, last = split_text(reply.text, TEXT_LIMIT) or [reply.text]
                for part in first:
                    await context.bot.send_message(chat_id, part)
                await context.bot.send_message(chat_id, last, reply_markup=markup)
            except Forbidden:
                log.info("user blocked the bot", extra={"chat": "private"})
                return

    def _turn(self, update: Update, **kw: Any) -> Turn:
        return Turn(CHANNEL, str(update.effective_user.id), update_id=update.update_id, **kw)

    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Pass a private text message or command to the core."""
        text = update.message.text
        if addressed_to_other_bot(text, context.bot.username):
            # `/daftar@OtherBot` typed in our private chat is not for us: rather than run
            # /daftar (the core drops "@..."), say the command is unknown, with the menu.
            menu = tuple(Button(self.texts(f"label/{i}"), f"/{i}") for i in MAIN_MENU)
            await self._say(update, context, [Reply(self.texts("unknown_command"), buttons=menu)],
                            "other_bot")
            return
        await self._respond(update, context, self._turn(update, text=text))

    async def on_edited(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Say politely that edits are not read: answering an edit as a new message could
        store a second answer into the next form field. The conversation is left as it is."""
        await self._say(update, context, [Reply(self.texts("edited_not_read"))], "edited")

    async def on_contact(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Pass a shared contact to the core, saying whose contact it is."""
        contact = update.message.contact
        owner = str(contact.user_id) if contact.user_id is not None else None
        turn = self._turn(update, contact=Contact(contact.phone_number, user_id=owner))
        await self._respond(update, context, turn)

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Answer an inline button press and mark the choice on its message while the turn
        runs (two Bot API calls the reply need not wait for), then reply."""
        query = update.callback_query
        cosmetic = asyncio.create_task(self._acknowledge(query))
        try:
            await self._respond(update, context, self._turn(update, payload=query.data))
        finally:
            await cosmetic

    @staticmethod
    async def _acknowledge(query) -> None:
        """The answer and the mark on the message are cosmetic: a Telegram error there (even
        a timeout) must not lose the press itself."""
        with contextlib.suppress(TelegramError):
            await query.answer()
        message = query.message
        if message is not None and getattr(message, "reply_markup", None):
            label = next(
                (b.text for row in message.reply_markup.inline_keyboard for b in row
                 if b.callback_data == query.data),
                None,
            )
            with contextlib.suppress(TelegramError):
                if label:
                    await query.edit_message_text(f"{message.text}\n\n➡️ {label}")
                else:
                    await query.edit_message_reply_markup(None)

    async def on_other_media(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Let the core say politely that only text can be read (and re-ask a form step)."""
        message = update.effective_message
        kind = next((k for k in ("sticker", "photo", "voice", "video", "audio", "document",
                                 "location", "animation", "video_note", "poll")
                     if getattr(message, k, None)), "other")
        await self._respond(update, context, self._turn(update, unsupported=kind))

    async def on_group_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """In groups, answer our commands only, with a pointer to a private chat."""
        username = context.bot.username
        if addressed_to_other_bot(update.effective_message.text, username):
            return  # `/daftar@OtherBot`: another bot in the group will answer it
        await update.effective_message.reply_text(
            self.texts("group_only", link=f"https://t.me/{username}")
        )

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log errors (redacted by the log formatter) and apologise when we can."""
        log.error("telegram handler failed", exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None:
            with contextlib.suppress(TelegramError):
                await context.bot.send_message(
                    update.effective_chat.id, self.texts("internal_error"),
                    reply_markup=ReplyKeyboardRemove(),
                )


async def start_delivery(app: Application) -> None:
    """Register the reply sender (so peers see it alive) and run its heartbeat."""
    delivery: Worker = app.bot_data["delivery"]
    if app.bot_data.get("delivery_task") is not None:
        return
    with contextlib.suppress(Exception):  # else run() registers, retrying until it can
        await delivery.db(store.register_worker, delivery.id, datetime.now(UTC))
        delivery.registered.set()
    stop = asyncio.Event()
    app.bot_data["delivery_stop"] = stop
    app.bot_data["delivery_task"] = asyncio.create_task(delivery.run(stop))


async def stop_delivery(app: Application) -> None:
    """Stop the reply sender (its rows in flight are finished or given back)."""
    task = app.bot_data.pop("delivery_task", None)
    if task is not None:
        app.bot_data["delivery_stop"].set()
        with contextlib.suppress(Exception):
            await task
    await app.bot_data["delivery"].sender.close()


async def on_startup(application: Application) -> None:
    """Start the reply sender; register the command menu shown in private chats."""
    await start_delivery(application)
    await application.bot.set_my_commands(
        [BotCommand(name, description) for name, description in COMMANDS],
        scope=BotCommandScopeAllPrivateChats(),
    )


def build_application(
    token: str, assistant: Assistant, base_url: str = "https://api.telegram.org/bot",
    rate: float = 30.0, gate: UpdateGate | None = None,
    typing_delay: float = TYPING_DELAY_SECONDS,
) -> Application:
    """Wire the Telegram application: handlers in one place, as in PTB's examples.

    Replies go to the outbox in the turn's transaction and are sent at once by a
    fast-path sender sharing the outbox's budget (`rate` messages/s, all processes), so no
    PTB rate limiter: typing indicators and callback answers do not use the budget.
    Updates are fed to `app.update_queue` by bot.polling.DurablePoller or, in webhook mode,
    by bot.webhook (which passes its `gate`).
    """
    assistant.outbox_channels = assistant.outbox_channels | {CHANNEL}
    metrics.instrument(assistant)  # NLU timings per turn and per server (bot.metrics)
    delivery = Worker(assistant.sessions, TelegramSender(token, base_url),
                      WorkerConfig(rate=rate), claiming=False, pause=PROCESS_PAUSE)
    channel = TelegramChannel(assistant, delivery, typing_delay)
    app = (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .concurrent_updates(PerUserUpdateProcessor(gate=gate))
        .updater(None)  # DurablePoller or the webhook feeds the queue: stored, then confirmed
        .post_init(on_startup)
        .build()
    )
    new = filters.UpdateType.MESSAGE  # edits and channel posts are not new messages
    private = filters.ChatType.PRIVATE & new
    groups = filters.ChatType.GROUPS & new
    # Only edited texts are answered: a shared live location sends an edit every few
    # seconds. Edits in groups are ignored like every non-command there.
    edited = filters.UpdateType.EDITED_MESSAGE & filters.ChatType.PRIVATE & filters.TEXT
    app.add_handler(MessageHandler(edited, channel.on_edited))
    app.add_handler(MessageHandler(groups & filters.COMMAND, channel.on_group_command))
    app.add_handler(MessageHandler(private & filters.TEXT, channel.on_text))
    app.add_handler(MessageHandler(private & filters.CONTACT, channel.on_contact))
    app.add_handler(MessageHandler(private & ~filters.StatusUpdate.ALL, channel.on_other_media))
    app.add_handler(CallbackQueryHandler(channel.on_callback))
    app.add_handler(TypeHandler(Update, channel.on_done), group=1)
    app.bot_data["assistant"] = assistant
    app.bot_data["delivery"] = delivery
    app.add_error_handler(channel.on_error)
    return app


def run_polling(settings, nlu_url: str, with_worker: bool = True,
                metrics_port: int | None = None, metrics_host: str = "127.0.0.1") -> None:
    """Run the bot with long polling until interrupted (with the outbox worker inside);
    with `metrics_port`, GET /metrics is served on metrics_host:metrics_port meanwhile."""
    from bot.app import build_assistant, make_nlu_client

    client = make_nlu_client(settings, nlu_url)
    assistant = build_assistant(settings, client)
    app = build_application(settings.telegram_bot_token, assistant, settings.telegram_api_url,
                            rate=settings.telegram_max_rate)
    from bot.background import add_background

    add_background(app, assistant, settings, with_worker)
    server = None
    try:
        if metrics_port is not None:
            server = metrics.MetricsServer(metrics_host, metrics_port,
                                           metrics.DatabaseFigures(assistant.sessions),
                                           token=settings.metrics_token).start()
            log.info("metrics served", extra={"host": metrics_host, "port": server.port})
        asyncio.run(serve(app, DurablePoller(app, assistant.sessions)))
    finally:
        if server is not None:
            server.stop()
        client.close()


async def serve(app: Application, poller: DurablePoller,
                stop: asyncio.Event | None = None) -> None:
    """Start the application, poll until SIGINT/SIGTERM (or `stop`), stop cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await app.initialize()
    try:
        if app.post_init:
            await app.post_init(app)
        await app.bot.delete_webhook()
        await app.start()
        try:
            await poller.run(stop)
        finally:
            await app.stop()
            if app.post_stop:
                await app.post_stop(app)
            await stop_delivery(app)
    finally:
        await app.shutdown()
