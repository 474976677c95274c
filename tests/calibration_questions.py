"""Questions about data/sample/: ones the documents answer and ones they do not (for the gate)."""

ANSWERABLE = [
    "How many days of paid annual leave do full-time employees accrue?",
    "How many unused leave days can be carried over to next year?",
    "What is the per diem in Hamburg?",
    "Who is the site manager in Montreal?",
    "When does the shuttle bus leave car park D?",
    "Which phone extension do I call to report a lost laptop?",
    "When will Hangar 4 open?",
    "What was fleet availability in Q3?",
    "How do I report a phishing e-mail?",
    "What changed in release 5.2 of the maintenance records system?",
    "Where do I collect my badge on my first day?",
    "How long must passwords be?",
    "What is the mileage reimbursement rate for private cars?",
    "Which class can be booked for flights longer than six hours?",
    "Which offices are closed on Labour Day 2027?",
]

UNANSWERABLE = [
    "What is the boiling point of tungsten in kelvin?",
    "Who won the 2018 football world cup?",
    "How do I bake sourdough bread?",
    "What is the capital of Australia?",
    "What is the airspeed velocity of an unladen swallow?",
    "How do I configure a Kubernetes ingress controller?",
    "Which chess opening is best for beginners?",
    "How many moons does Jupiter have?",
]
