"""Tell text, media, deleted and system messages apart, in the languages WhatsApp exports in.

The markers come from real exports catalogued in `shared/reference/whatsapp-export-formats.md`.
`classify` runs once per message, so the common case (plain text) is decided with a few
C-level string checks before any regular expression runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from style.messages import Media, MediaType, MessageKind

INVISIBLE = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
"""Bidi and byte-order marks WhatsApp sprinkles into headers, authors and marker lines."""

DROP_INVISIBLE = str.maketrans("", "", INVISIBLE)

_DELETED = frozenset(
    (
        "This message was deleted",
        "You deleted this message",
        "Diese Nachricht wurde gelöscht",
        "Du hast diese Nachricht gelöscht",
        "Se eliminó este mensaje",
        "Eliminaste este mensaje",
        "Este mensaje fue eliminado",
        "Mensagem apagada",
        "Você apagou esta mensagem",
        "Esta mensagem foi apagada",
        "Ce message a été supprimé",
        "Vous avez supprimé ce message",
        "Questo messaggio è stato eliminato",
        "Hai eliminato questo messaggio",
        "Dit bericht is verwijderd",
        "Je hebt dit bericht verwijderd",
        "Данное сообщение удалено",
        "Это сообщение удалено",
        "Вы удалили это сообщение",
    )
)

OMITTED: dict[str, MediaType] = {
    # Android, exported without media
    "<Media omitted>": MediaType.UNKNOWN,
    "<Medien ausgeschlossen>": MediaType.UNKNOWN,
    "<Media weggelaten>": MediaType.UNKNOWN,
    "<Média vynechány>": MediaType.UNKNOWN,
    "<Без медиафайлов>": MediaType.UNKNOWN,
    "<Media omessi>": MediaType.UNKNOWN,
    "<Multimedia omitido>": MediaType.UNKNOWN,
    "<Arquivo de mídia oculto>": MediaType.UNKNOWN,
    "<Mídia oculta>": MediaType.UNKNOWN,
    "<Médias omis>": MediaType.UNKNOWN,
    "<Video message omitted>": MediaType.VIDEO,
    "<Video note omitted>": MediaType.VIDEO,
    "null": MediaType.VIEW_ONCE,
    # iOS, exported without media
    "image omitted": MediaType.IMAGE,
    "video omitted": MediaType.VIDEO,
    "audio omitted": MediaType.AUDIO,
    "sticker omitted": MediaType.STICKER,
    "GIF omitted": MediaType.GIF,
    "Contact card omitted": MediaType.CONTACT,
    "document omitted": MediaType.DOCUMENT,
    "imagen omitida": MediaType.IMAGE,
    "video omitido": MediaType.VIDEO,
    "audio omitido": MediaType.AUDIO,
    "sticker omitido": MediaType.STICKER,
    "GIF omitido": MediaType.GIF,
    "Bild weggelassen": MediaType.IMAGE,
    "Video weggelassen": MediaType.VIDEO,
    "Audio weggelassen": MediaType.AUDIO,
    "Sticker weggelassen": MediaType.STICKER,
    "GIF weggelassen": MediaType.GIF,
    "image absente": MediaType.IMAGE,
    "vidéo absente": MediaType.VIDEO,
    "audio omis": MediaType.AUDIO,
    "imagem não revelada": MediaType.IMAGE,
    "imagem ocultada": MediaType.IMAGE,
    "vídeo omitido": MediaType.VIDEO,
    "áudio ocultado": MediaType.AUDIO,
    "immagine omessa": MediaType.IMAGE,
    "video omesso": MediaType.VIDEO,
    "audio omesso": MediaType.AUDIO,
    "afbeelding weggelaten": MediaType.IMAGE,
    "video weggelaten": MediaType.VIDEO,
    "audio weggelaten": MediaType.AUDIO,
    "изображение отсутствует": MediaType.IMAGE,
    "видео отсутствует": MediaType.VIDEO,
    "аудиофайл отсутствует": MediaType.AUDIO,
    "зображення відсутнє": MediaType.IMAGE,
    "obrázek vynechán": MediaType.IMAGE,
    "画像は含まれていません": MediaType.IMAGE,
    "لم يتم إدراج الصورة": MediaType.IMAGE,
    "đã bỏ qua hình ảnh": MediaType.IMAGE,
    "gambar tidak disertakan": MediaType.IMAGE,
    "ไม่มีรูปภาพ": MediaType.IMAGE,
    "फ़ोटो हटाई गई": MediaType.IMAGE,
    "görüntü dahil edilmedi": MediaType.IMAGE,
}

DOCUMENT_OMITTED = (
    "document omitted",
    "documento omitido",
    "Dokument weggelassen",
    "document absent",
    "documento omesso",
    "document weggelaten",
    "документ отсутствует",
)

_EDITED = (
    "<This message was edited>",
    "<Diese Nachricht wurde bearbeitet>",
    "<Este mensaje fue editado>",
    "<Se editó este mensaje.>",
    "<Esta mensagem foi editada>",
    "<Ce message a été modifié>",
    "<Questo messaggio è stato modificato>",
    "<Dit bericht is bewerkt>",
    "<Сообщение изменено>",
    "<Это сообщение было изменено>",
)

_FILE_ATTACHED = re.compile(
    r"(?P<file>.+?) \((?:file attached|Datei angehängt|bestand bijgevoegd|soubor byl přiložen"
    r"|файл добавлен|archivo adjunto|arquivo anexado|fichier joint|file allegato)\)"
)
_ATTACHED = re.compile(
    r"(?:(?P<caption>.*?)\s*)?<[\u200e]*(?:attached|Anhang|adjunto|anexo|anexado|allegato"
    r"|pièce jointe|bijlage|вложение|прикреплено)\s?:\s?(?P<file>[^>]+)>"
)
_OLD_IOS_ATTACHED = re.compile(r"(?P<file>\S+) <[\u200e]*attached>")

_LOCATION_PREFIXES = (
    "location: ",
    "Location: ",
    "Standort: ",
    "Ubicación: ",
    "Localização: ",
    "Localisation : ",
    "Posizione: ",
    "Locatie: ",
    "местоположение: ",
    "Местоположение: ",
)
_LIVE_LOCATION = ("live location shared", "Live location shared", "Live-Standort geteilt")
_POLL_PREFIXES = ("POLL:", "ENCUESTA:", "UMFRAGE:", "ENQUETE:", "SONDAGE :", "SONDAGGIO:", "ОПРОС:")
_CONTACT_SUFFIX = ".vcf"

_ENCRYPTION = (
    "Messages and calls are end-to-end encrypted",
    "Messages to this group are now secured",
    "Messages you send to this group are now secured",
    "Messages to this chat and calls are now secured",
    "Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt",
    "Los mensajes y las llamadas están cifrados de extremo a extremo",
    "As mensagens e as chamadas são protegidas com a criptografia de ponta a ponta",
    "Les messages et les appels sont chiffrés de bout en bout",
    "I messaggi e le chiamate sono crittografati end-to-end",
    "Berichten en gesprekken worden end-to-end versleuteld",
    "Сообщения и звонки защищены сквозным шифрованием",
)
"""Long fixed sentences: a prefix match is safe."""

_CALL = re.compile(
    r"(?:Missed (?:group )?(?:voice|video) call|(?:Group )?(?:Voice|Video) call"
    r"|Verpasster (?:Sprach|Video)anruf|(?:Video)?[Ll]lamada perdida"
    r"|Chamada de (?:voz|vídeo) perdida"
    r"|Appel (?:vocal|vidéo) manqué|Chiamata (?:vocale|video) persa|Gemiste (?:spraak|video)oproep"
    r"|Пропущенный (?:аудио|видео)звонок)"
    r"(?:[.,] [^\n]{0,40})?"
)
"""Call lines: Android gives them an author (`Sam: Missed voice call`), iOS adds details."""

_NAME = r"(?:~\s?)?[^\n]{1,60}?"
_GROUP_EVENT = re.compile(
    rf"{_NAME} (?:created group [\"“].*[\"”]|created this group|left|was removed|were removed"
    rf"|added {_NAME}|removed {_NAME}|joined using (?:this|a) group's invite link"
    r"|joined from the community|changed the subject (?:from .* )?to .*|changed the group name .*"
    r"|changed the group description|changed this group's (?:icon|settings.*)"
    r"|deleted this group's icon|changed their phone number.*|is now an admin|are now an admin"
    r"|pinned a message|updated the message timer.*|turned (?:on|off) disappearing messages.*"
    r"|hat die Gruppe .* erstellt|hat .* hinzugefügt|hat .* entfernt|ist beigetreten"
    r"|creó el grupo .*|añadió a .*|eliminó a .*|salió del grupo|salió"
    r"|criou o grupo .*|adicionou .*|removeu .*|saiu"
    r"|a créé le groupe .*|a ajouté .*|a retiré .*|est parti(?:e)?"
    r"|ha creato il gruppo .*|ha aggiunto .*|ha rimosso .*|è uscit[oa]"
    r"|heeft groep .* aangemaakt|heeft .* toegevoegd|heeft .* verwijderd|is vertrokken"
    r"|создал(?:а)? группу .*|добавил(?:а)? .*|удалил(?:а)? .*|вышел|вышла)"
    r"\.?"
)
_SELF_EVENT = re.compile(
    r"(?:created group [\"“].*[\"”]|created this group|left|joined using this group's invite link"
    r"|changed the subject (?:from .* )?to .*|changed the group description"
    r"|changed this group's icon|deleted this group's icon|changed their phone number.*)"
)
"""What an author's own system line says after their name (`~ AK: ~ AK created this group`)."""

_YOU_EVENT = (
    "You created group",
    "You created this group",
    "You were added",
    "You joined using",
    "You're now an admin",
    "You're no longer an admin",
    "You changed the subject",
    "You changed the group",
    "You changed this group's",
    "You left",
    "You blocked this contact",
    "You unblocked this contact",
    "You turned on disappearing",
    "You turned off disappearing",
    "You updated the message timer",
    "Your security code with",
    "Waiting for this message",
    "This chat is with a business account",
    "Disappearing messages were turned",
)
"""Lines only the export itself writes; matched when the line is marked as a system line."""


@dataclass(slots=True)
class Classified:
    """What `classify` learned about one message body."""

    kind: MessageKind
    text: str
    edited: bool = False
    media: Media | None = None
    notice: str | None = None


def _visible(text: str) -> str:
    return text.translate(DROP_INVISIBLE) if not text.isascii() else text


def classify(text: str, author: str | None, *, chat_name: bool = False) -> Classified:
    """Decide the kind of one message and strip the markers that said so.

    Header lines without "Name:" (`author` None) are always system lines. `chat_name` says
    the author is the chat itself (it signed the encryption notice), as iOS exports do.
    """
    if author is None:
        return Classified(MessageKind.SYSTEM, "", notice=_visible(text).strip())

    edited = False
    if text.endswith(">") and text.endswith(_EDITED):
        for marker in _EDITED:
            if text.endswith(marker):
                text = text[: -len(marker)].rstrip(" \u200e")
                edited = True
                break

    visible = _visible(text).strip() if (not text.isascii() or text[-1:] == " ") else text
    media_type = OMITTED.get(visible)
    if media_type is not None:
        return Classified(MessageKind.MEDIA, "", edited, Media(media_type, omitted=True))
    if visible.rstrip(".") in _DELETED:
        return Classified(MessageKind.DELETED, "", edited)

    last = visible[-1:]
    if last == ">":
        media = _attachment(visible)
        if media is not None:
            return Classified(MessageKind.MEDIA, "", edited, media)
    elif last == ")":
        found = _FILE_ATTACHED.fullmatch(visible)
        if found:
            filename = found["file"]
            return Classified(MessageKind.MEDIA, "", edited, Media(_type_of(filename), filename))
    elif visible.endswith(DOCUMENT_OMITTED):
        filename = visible.rsplit(" ", 2)[0].split(" • ")[0].strip() or None
        return Classified(MessageKind.MEDIA, "", edited, Media(MediaType.DOCUMENT, filename, True))

    if "\n" in visible:
        first, _, rest = visible.partition("\n")
        media = _attachment(first) if first.endswith(">") else None
        if media is None and first.endswith(")"):
            found = _FILE_ATTACHED.fullmatch(first)
            media = Media(_type_of(found["file"]), found["file"]) if found else None
        if media is None and first in OMITTED:
            media = Media(OMITTED[first], omitted=True)
        if media is not None:
            media.caption = rest
            return Classified(MessageKind.MEDIA, "", edited, media)

    if visible.startswith(_LOCATION_PREFIXES):
        url = visible.split(": ", 1)[1].strip()
        if url.startswith(("https://", "http://")) and " " not in url:
            return Classified(MessageKind.MEDIA, "", edited, Media(MediaType.LOCATION, url=url))
    if visible in _LIVE_LOCATION:
        return Classified(MessageKind.MEDIA, "", edited, Media(MediaType.LOCATION))
    if visible.startswith(_POLL_PREFIXES):
        return Classified(MessageKind.MEDIA, "", edited, Media(MediaType.POLL, caption=visible))
    if _is_system(visible, text, author, chat_name):
        return Classified(MessageKind.SYSTEM, "", notice=visible)
    return Classified(MessageKind.TEXT, text, edited)


def _is_system(visible: str, text: str, author: str, chat_name: bool) -> bool:
    """Is an authored line a system line? iOS marks those with an LRM; Android does not.

    Encryption notices and calls are unmistakable. Group events are only believed when the
    line is marked (LRM), comes from the chat's own name, or is the author's own creation or
    departure notice, so that "Anna added me on insta" stays a message.
    """
    if visible.startswith(_ENCRYPTION) or _CALL.fullmatch(visible):
        return True
    if len(visible) > 300:
        return False
    marked = text[:1] in INVISIBLE or chat_name
    if marked and (visible.startswith(_YOU_EVENT) or _GROUP_EVENT.fullmatch(visible)):
        return True
    actor = author.lstrip("~ \u202f")
    tail = visible.lstrip("~ \u202f")
    return (
        bool(actor)
        and tail.startswith(actor + " ")
        and bool(_SELF_EVENT.fullmatch(tail[len(actor) + 1 :]))
    )


def is_encryption_notice(text: str) -> bool:
    """The first line iOS attributes to the chat's own name."""
    return _visible(text).lstrip().startswith(_ENCRYPTION)


def _attachment(visible: str) -> Media | None:
    found = _ATTACHED.fullmatch(visible)
    if found:
        filename = found["file"].strip()
        caption = found["caption"] or None
        return Media(_type_of(filename), filename, caption=caption)
    found = _OLD_IOS_ATTACHED.fullmatch(visible)
    if found:
        return Media(_type_of(found["file"]), found["file"])
    return None


_TYPE_BY_TAG = {
    "PHOTO": MediaType.IMAGE,
    "IMG": MediaType.IMAGE,
    "VIDEO": MediaType.VIDEO,
    "VID": MediaType.VIDEO,
    "AUDIO": MediaType.AUDIO,
    "AUD": MediaType.AUDIO,
    "PTT": MediaType.VOICE,
    "STICKER": MediaType.STICKER,
    "STK": MediaType.STICKER,
    "GIF": MediaType.GIF,
    "DOC": MediaType.DOCUMENT,
}
_TYPE_BY_EXTENSION = {
    "jpg": MediaType.IMAGE,
    "jpeg": MediaType.IMAGE,
    "png": MediaType.IMAGE,
    "heic": MediaType.IMAGE,
    "mp4": MediaType.VIDEO,
    "mov": MediaType.VIDEO,
    "3gp": MediaType.VIDEO,
    "opus": MediaType.VOICE,
    "ogg": MediaType.AUDIO,
    "m4a": MediaType.AUDIO,
    "mp3": MediaType.AUDIO,
    "aac": MediaType.AUDIO,
    "webp": MediaType.STICKER,
    "gif": MediaType.GIF,
    "vcf": MediaType.CONTACT,
}


def _type_of(filename: str) -> MediaType:
    """Guess the media type from WhatsApp's file naming (IMG-..., 00000035-PHOTO-...)."""
    for part in re.split(r"[-_.]", filename)[:3]:
        tagged = _TYPE_BY_TAG.get(part.upper())
        if tagged is not None:
            return tagged
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if filename.endswith(_CONTACT_SUFFIX):
        return MediaType.CONTACT
    return _TYPE_BY_EXTENSION.get(extension, MediaType.DOCUMENT)


CLASSIFY_HEADS = frozenset(
    marker[:4]
    for marker in (
        *_DELETED,
        *OMITTED,
        *_LOCATION_PREFIXES,
        *_LIVE_LOCATION,
        *_POLL_PREFIXES,
        *_ENCRYPTION,
        "Missed",
        "Voice",
        "Video",
        "Group",
        "Verpasst",
        "Llamada",
        "Videollamada",
        "Chamada",
        "Appel",
        "Chiamata",
        "Gemiste",
        "Пропущ",
        *(f"{tag}-" for tag in _TYPE_BY_TAG),
        "<",
    )
)


def needs_classifying(text: str) -> bool:
    """False for the plain text that makes up almost every chat, decided in a few C calls.

    Every marker starts with one of `CLASSIFY_HEADS` (first four characters), ends with ">" or ")",
    carries an LRM, or is an exact placeholder; anything that might be one goes to `classify`.
    """
    return (
        text[:4] in CLASSIFY_HEADS
        or text[-1:] in ">)"
        or "\u200e" in text
        or text in OMITTED
        or text.endswith(DOCUMENT_OMITTED)
    )
