"""Regenerate the bundled sample documents in data/sample/ (a fictional company, Northwind Aero).

Run with the test extras installed: `.venv/bin/python data/make_samples.py`. The outputs are
committed, so users never need to run this; it documents where the files came from.
"""

from __future__ import annotations

import csv
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timezone
from pathlib import Path

OUT = Path(__file__).parent / "sample"

HANDBOOK = [
    ("Welcome", [
        "Northwind Aero designs and maintains regional turboprop aircraft. This handbook explains the "
        "policies that apply to every employee, contractor and intern. Where a local agreement differs, "
        "the local agreement prevails.",
        "Questions about this handbook go to the People Operations team at people@northwind-aero.example.",
    ]),
    ("Annual leave", [
        "Full-time employees accrue 25 days of paid annual leave per calendar year, credited monthly. "
        "Part-time employees accrue leave in proportion to their contracted hours.",
        "Up to 5 unused days may be carried over into the first quarter of the following year. Days not "
        "taken by 31 March are forfeited unless the employee's manager approved an exception in writing.",
        "Leave requests longer than ten working days must be submitted at least four weeks in advance.",
    ]),
    ("Remote work", [
        "Employees may work remotely up to three days per week after completing their probation period. "
        "Hangar technicians and line maintenance staff are exempt because their work requires presence on site.",
        "Remote workers must use the company VPN and a managed laptop. Printing confidential engineering "
        "drawings at home is not permitted.",
    ]),
    ("Expenses", [
        "Expense claims must be filed within 30 days of the expense with an itemised receipt. Claims above "
        "500 euros require approval from a director.",
        "Mileage for private cars used on company business is reimbursed at 0.30 euros per kilometre.",
    ]),
    ("Information security", [
        "Report a lost laptop or phone to the IT service desk within one hour, by calling extension 4400.",
        "Passwords must be at least 14 characters long and are never shared, not even with IT staff. "
        "Multi-factor authentication is mandatory for e-mail, the VPN and the maintenance records system.",
    ]),
]


def make_pdf() -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Northwind Aero Employee Handbook 2026")
    pdf.set_author("People Operations")
    for title, paras in HANDBOOK:
        pdf.add_page()
        pdf.start_section(title)
        pdf.set_font("Helvetica", "B", 16)
        pdf.multi_cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        for para in paras:
            pdf.multi_cell(0, 6, para, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    pdf.output(str(OUT / "employee-handbook.pdf"))


def make_docx() -> None:
    import docx

    d = docx.Document()
    d.core_properties.title = "Travel Policy"
    d.add_heading("Travel Policy", 0)
    d.add_heading("Booking", 1)
    d.add_paragraph("All business travel is booked through the corporate travel portal at least 14 days "
                    "before departure. Economy class is the default for flights under six hours.")
    d.add_heading("Flights over six hours", 2)
    d.add_paragraph("Premium economy may be booked for flights longer than six hours. Business class needs "
                    "the approval of the Chief Financial Officer.")
    d.add_heading("Per diem rates", 1)
    d.add_paragraph("Daily allowances cover meals and local transport. Hotel costs are reimbursed separately.")
    rows = [("City", "Per diem (EUR)", "Hotel cap (EUR)"), ("Toulouse", "65", "140"),
            ("Hamburg", "70", "150"), ("Montreal", "80", "190"), ("Singapore", "90", "220")]
    table = d.add_table(rows=len(rows), cols=3)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_heading("Safety", 1)
    d.add_paragraph("Travellers to high-risk destinations register their itinerary with the security desk "
                    "and carry the emergency assistance card.")
    d.save(OUT / "travel-policy.docx")


def make_pptx() -> None:
    from pptx import Presentation

    prs = Presentation()
    slides = [
        ("Q3 2026 Operations Review", "Northwind Aero leadership meeting, October 2026",
         "Opening remarks by the COO."),
        ("Fleet availability", "Fleet availability reached 97.2% in Q3, up from 95.8% in Q2.\n"
         "Unscheduled engine removals fell to 3.", "The new borescope programme explains most of the gain."),
        ("Hangar 4 expansion", "Construction of Hangar 4 in Toulouse is 60% complete.\n"
         "Handover is planned for March 2027.", ""),
        ("Hiring", "42 technicians hired in Q3; 18 open positions remain.", "Focus on avionics specialists."),
    ]
    for title, body, notes in slides:
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    prs.core_properties.title = "Q3 2026 Operations Review"
    prs.save(OUT / "q3-operations-review.pptx")


def make_xlsx() -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Offices"
    ws.append(["City", "Address", "Headcount", "Site manager"])
    ws.append(["Toulouse", "12 Rue des Hangars", 310, "Claire Dubois"])
    ws.append(["Hamburg", "Flughafenstrasse 8", 145, "Jonas Weber"])
    ws.append(["Montreal", "400 Boulevard de l'Aviation", 88, "Marie Tremblay"])
    hol = wb.create_sheet("Holidays 2027")
    hol.append(["Date", "Holiday", "Offices closed"])
    hol.append(["2027-01-01", "New Year's Day", "All"])
    hol.append(["2027-05-01", "Labour Day", "Toulouse, Hamburg"])
    hol.append(["2027-07-01", "Canada Day", "Montreal"])
    wb.properties.title = "Office directory"
    wb.save(OUT / "offices.xlsx")


def make_text_files() -> None:
    (OUT / ".workbench-access").write_text(
        "# Who may read the documents in this folder (and below). See README, \"Access control\".\n"
        "# Members of the admin group read everything; a document no access file covers is admins-only.\n"
        'groups = ["staff"]\n')
    with open(OUT / "it-contacts.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Service", "Contact", "Phone", "Hours"])
        w.writerow(["Service desk", "it-help@northwind-aero.example", "4400", "24/7"])
        w.writerow(["Maintenance records system", "mrs-support@northwind-aero.example", "4410", "06:00-22:00"])
        w.writerow(["Badges and building access", "security@northwind-aero.example", "4420", "08:00-18:00"])
    (OUT / "security-faq.html").write_text("""<!doctype html>
<html><head><title>Security FAQ</title><script>trackVisit();</script><style>body{font:14px sans-serif}</style></head>
<body><nav><a href="/">Intranet home</a> | <a href="/it">IT</a></nav>
<main><h1>Security FAQ</h1>
<h2>Visitors</h2><p>Visitors must be escorted at all times inside hangars and may not take photographs
near aircraft under maintenance.</p>
<h2>Phishing</h2><p>Forward suspicious e-mails as attachments to phishing@northwind-aero.example.
Never enter your password on a page reached from an e-mail link.</p>
<h3>What happens next</h3><p>The security team answers within one working day and blocks the sender if needed.</p>
</main><footer>Copyright Northwind Aero</footer></body></html>
""", encoding="utf-8")
    (OUT / "onboarding.md").write_text("""# Onboarding guide

Welcome aboard. This guide lists what happens in your first two weeks.

## First day

Collect your badge at the Toulouse reception from 08:30. Your manager meets you there.

### Equipment

IT hands out a managed laptop and a hardware security key. Enable multi-factor authentication before noon.

## First week

Complete the mandatory safety briefing for hangar access and the information security course.

## Second week

Shadow a colleague on a line maintenance shift and meet your onboarding buddy for a review.
""", encoding="utf-8")
    (OUT / "release-notes.txt").write_text("""Maintenance Records System - release notes 5.2

Version 5.2 was released on 3 November 2026.

Work orders can now be signed electronically by certifying staff, which removes the paper sign-off sheet.

The parts search now finds superseded part numbers and shows the current replacement.

Known issue: exports to CSV omit the station code; a fix is planned for 5.2.1.
""", encoding="utf-8")


def make_email() -> None:
    msg = EmailMessage()
    msg["From"] = "Chief Operating Officer <coo@northwind-aero.example>"
    msg["To"] = "All staff <staff@northwind-aero.example>"
    msg["Subject"] = "Hangar 4 opening date and parking changes"
    msg["Date"] = format_datetime(datetime(2026, 11, 2, 9, 15, tzinfo=timezone.utc))
    msg.set_content("Dear colleagues,\n\nHangar 4 will open in March 2027. During construction, car park B "
                    "is closed; please use car park D and the shuttle bus, which runs every 10 minutes.\n\n"
                    "The attached notice has the shuttle timetable.\n\nBest regards,\nThe COO")
    msg.add_attachment("Shuttle timetable\n\nThe shuttle bus leaves car park D at 06:00 and then every 10 "
                       "minutes until 20:00. The last bus back to car park D leaves Hangar 2 at 20:15.\n",
                       filename="shuttle-notice.txt")
    (OUT / "hangar4-announcement.eml").write_bytes(bytes(msg))


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    make_pdf()
    make_docx()
    make_pptx()
    make_xlsx()
    make_text_files()
    make_email()
    print("\n".join(sorted(p.name for p in OUT.iterdir())))
